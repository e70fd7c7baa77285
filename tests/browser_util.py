"""Run ``streamlit run app.py`` as a real server and drive it with headless Chromium.

Playwright's own browser download does not work offline, so the system Chromium is used.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HEALTH_TIMEOUT_S = 60
# The server is local: never send the health check through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(base_url: str, process: subprocess.Popen, log: Path, timeout: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with _DIRECT.open(f"{base_url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer {base_url}/_stcore/health within {timeout:.0f} s:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def streamlit_server(cai_home: Path, model_dir: Path, log: Path) -> Iterator[str]:
    """Start the app on a free port with its own CAI_HOME and model; yield its base URL."""
    port = free_port()
    env = {**os.environ, "CAI_HOME": str(cai_home), "CAI_MODEL": str(model_dir), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false",
               # Watching the repo (virtualenv included) floods inotify and buys a test nothing.
               "--server.fileWatcherType", "none"]
    with log.open("wb") as output:
        # A session of its own, so the whole process group can be ended at once.
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base_url, process, log)
        yield base_url
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """End the server and anything it started (its own process group, made at launch)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue


def wait_for_app_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit reports that no script run is in progress.

    Right after an action the run may not have started yet, so callers also wait for the
    outcome they expect; this only guards against acting on a half-drawn page.
    """
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def widget(page, key: str):
    """The element Streamlit wraps around the widget with ``key`` (it gets class ``st-key-<key>``)."""
    return page.locator(f".st-key-{css_class_key(key)}")


def css_class_key(key: str) -> str:
    # The same rewrite Streamlit's frontend applies: anything outside [a-zA-Z0-9_-] becomes '-'.
    return re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())
