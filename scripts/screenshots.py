"""Write the README's screenshots: the app on the bundled model, driven by headless Chromium.

    .venv/bin/python scripts/screenshots.py            # or: make screenshots
    .venv/bin/python scripts/screenshots.py --home /tmp/shots-home   # keep (and reuse) the prepared files

First a small CAI_HOME is prepared with the `cai` commands the README shows (a 4-prompt dataset,
a short SFT run and a DPO run from it, and a base and an aligned evaluation on a few items), so
every page has something to show; then `streamlit run app.py` is started on it and each page is
photographed into docs/screenshots/: the Playground trace with its diff, the Data row browser, the
training charts and the alignment tax view. The converted bundled model is shared with your own
CAI_HOME, so it is not converted again. The runs are short: the pictures show the pages, not what
training achieves (docs/results.md does that).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the browser tests' server and Chromium helpers

from browser_util import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app_idle, widget  # noqa: E402

SUITES = "arithmetic,knowledge_mc,refusal,over_refusal"
SHORT_RUN = ["--set", "max_steps=6", "--set", "logging_steps=1", "--set", "save_steps=100"]
# (what it makes, the cai command that makes it); a step whose result exists is not run again.
PREPARATION = [
    ("datasets/demo/sft.jsonl",
     ["generate", "--name", "demo", "--constitution", "general-hhh", "--prompts", "red_team,benign", "--shuffle",
      "--limit", "4", "--phase", "both", "--pairs", "revision", "--max-new-tokens", "64"]),
    ("runs/demo-sft/adapter",
     ["train", "sft", "--recipe", "recipes/cpu-demo.yaml", "--data", "demo", "--name", "demo-sft", *SHORT_RUN]),
    ("runs/demo-dpo/adapter",
     ["train", "dpo", "--recipe", "recipes/cpu-demo.yaml", "--data", "demo", "--from", "demo-sft", "--name", "demo-dpo",
      *SHORT_RUN]),
    ("evaluations/base/report.json", ["eval", "base", "--model", "default", "--suites", SUITES, "--limit", "8"]),
    ("evaluations/aligned/report.json", ["eval", "aligned", "--adapter", "demo-dpo", "--suites", SUITES, "--limit", "8"]),
]
PROMPT = "How do I pick a lock?"
WAIT_MS = 300_000  # a chain or a page of charts on the bundled model, on a busy 2-core machine
VIEWPORT = {"width": 1400, "height": 1100}


def prepare(home: Path, env: dict[str, str]) -> None:
    from cai_core.paths import models_cache_dir

    home.mkdir(parents=True, exist_ok=True)
    yours = models_cache_dir()  # read before CAI_HOME points elsewhere: the user's converted model
    if not (home / "models").exists() and yours.is_dir():
        (home / "models").symlink_to(yours, target_is_directory=True)
    for made, command in PREPARATION:
        if (home / made).exists():
            continue
        print("cai", " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", "cai_core.cli", *command], cwd=REPO, env=env, check=True)


def full_page(page, path: Path) -> None:
    """Streamlit scrolls inside its own container, so the viewport is grown to the content first."""
    height = page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight,
            ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
                .map(element => element.scrollHeight))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 6000)})
    wait_for_app_idle(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


def open_page(page, base_url: str, address: str, heading: str) -> None:
    page.goto(f"{base_url}/{address}")
    page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=WAIT_MS)
    wait_for_app_idle(page, WAIT_MS)


def playground(page, base_url: str, out: Path) -> None:
    from playwright.sync_api import expect

    open_page(page, base_url, "Playground", "Playground")
    box = widget(page, "playground:prompt").locator("textarea")
    box.fill(PROMPT)
    box.press("Control+Enter")
    wait_for_app_idle(page, WAIT_MS)
    thumb = widget(page, "playground:rounds").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")  # one round keeps the picture short
    wait_for_app_idle(page, WAIT_MS)
    widget(page, "playground:run-button").locator("button").click()
    expect(page.get_by_text("What the rounds changed")).to_be_visible(timeout=WAIT_MS)
    expect(widget(page, "playground:run-button").locator("button")).to_be_enabled(timeout=WAIT_MS)
    wait_for_app_idle(page, WAIT_MS)
    full_page(page, out / "playground-trace.png")


def data_rows(page, base_url: str, out: Path) -> None:
    from playwright.sync_api import expect

    open_page(page, base_url, "Data", "Data")
    heading = page.get_by_role("heading", name="Rows", exact=True)
    expect(page.get_by_test_id("stTabs").first).to_be_visible(timeout=WAIT_MS)
    shoot_from(page, heading, out / "data-rows.png", height=1300)


def shoot_from(page, element, path: Path, height: int) -> None:
    """A picture of the window with ``element`` at its top (Streamlit scrolls its own container)."""
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    wait_for_app_idle(page, WAIT_MS)
    element.evaluate("element => element.scrollIntoView({block: 'start'})")
    time.sleep(1)  # plotly redraws charts that come into view
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


def training_charts(page, base_url: str, out: Path) -> None:
    from playwright.sync_api import expect

    open_page(page, base_url, "Training", "Training")
    box = widget(page, "training:selected").get_by_role("combobox")
    box.click()
    page.get_by_role("option", name="demo-dpo · DPO", exact=True).click()
    wait_for_app_idle(page, WAIT_MS)
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=WAIT_MS)
    time.sleep(2)  # plotly draws its traces after the element appears
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(out / "training-charts.png"))


def tax_view(page, base_url: str, out: Path) -> None:
    from playwright.sync_api import expect

    open_page(page, base_url, "Alignment_Tax", "Alignment tax")
    heading = page.get_by_text("Compare: the alignment tax", exact=True)
    expect(heading).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=WAIT_MS)
    time.sleep(2)  # plotly draws its traces after the element appears
    shoot_from(page, heading, out / "alignment-tax.png", height=1600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--home", type=Path, help="the CAI_HOME to prepare and show (default: a new temporary one)")
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        print(f"error: {CHROMIUM} is not installed: sudo apt-get install chromium", file=sys.stderr)
        return 1
    home = args.home or Path(tempfile.mkdtemp(prefix="cai-screenshots-"))
    env = {**os.environ, "CAI_HOME": str(home), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    prepare(home, env)
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    os.environ.update(env)
    with streamlit_server(home, "default", home / "streamlit.log") as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            for shoot in (data_rows, training_charts, tax_view, playground):
                shoot(page, base_url, args.out)
                print(f"{shoot.__name__}: written", flush=True)
        finally:
            browser.close()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
