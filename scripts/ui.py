"""Look at the project's UIs the way a user does: kedro-viz lineage and MLflow run comparison.

Headless Chromium (Debian's ``chromium``) driven by Playwright, against servers on 127.0.0.1
only. ``python scripts/ui.py`` rebuilds the README screenshots in ``docs/images/``; the tests
reuse these functions.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system Chromium (``apt-get install chromium``)."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("No Chromium found: apt-get install chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_directory(directory: Path):
    """A static file server on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def browser_page(width: int = 1600, height: int = 1000):
    """A Playwright page in headless system Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def build_viz(project: Path) -> Path:
    """``kedro viz build --include-previews`` in ``project``; returns the ``build`` folder."""
    subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=project, check=True, capture_output=True, text=True,
    )
    return project / "build"


def _dismiss_tour(page) -> None:
    """Close kedro-viz's feature-hint popup so it does not cover the graph."""
    close = page.locator(".feature-hints__close")
    if close.count():
        with contextlib.suppress(Exception):
            close.first.click(timeout=2000)
            page.wait_for_timeout(500)


def viz_lineage(build_dir: Path, pipeline: str = "amr", screenshot: Path | None = None) -> list[str]:
    """Open the static kedro-viz site on ``pipeline``; return the node labels it renders."""
    with serve_directory(build_dir) as url, browser_page() as page:
        page.goto(f"{url}/?pid={pipeline}&expandAllPipelines=true")
        page.wait_for_selector(".pipeline-node__text", timeout=60_000)
        page.wait_for_timeout(1500)
        _dismiss_tour(page)
        labels = page.locator(".pipeline-node__text").all_text_contents()
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(5000)
            page.screenshot(path=str(screenshot))
        return [label.strip() for label in labels]


def viz_preview(build_dir: Path, dataset: str, pipeline: str = "amr") -> str:
    """Click ``dataset`` in the kedro-viz site and return the text of its preview panel."""
    with serve_directory(build_dir) as url, browser_page() as page:
        page.goto(f"{url}/?pid={pipeline}&expandAllPipelines=true")
        page.wait_for_selector(".pipeline-node__text", timeout=60_000)
        page.wait_for_timeout(1500)
        _dismiss_tour(page)
        node = page.locator(".pipeline-node--data", has=page.locator(
            ".pipeline-node__text", has_text=dataset)).first
        node.click(force=True)
        panel = page.locator(".pipeline-metadata")
        panel.wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        return panel.inner_text()


@contextlib.contextmanager
def mlflow_server(project: Path):
    """``kedro mlflow ui`` on 127.0.0.1 with the project's mlflow.yml (what users run); yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", "mlflow", "ui", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow ui did not start") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)


def mlflow_comparison(url: str, experiment_id: str, run_ids: list[str],
                      screenshot: Path | None = None) -> str:
    """Open MLflow's compare-runs page for ``run_ids``; return its text."""
    import json
    from urllib.parse import quote

    query = f"runs={quote(json.dumps(run_ids))}&experiments={quote(json.dumps([experiment_id]))}"
    with browser_page(1600, 1200) as page:
        page.goto(f"{url}/#/compare-runs?{query}")
        page.wait_for_selector("text=Parameters", timeout=60_000)
        page.wait_for_timeout(2000)
        for close in (page.get_by_role("button", name="Close"), page.get_by_label("Close")):
            with contextlib.suppress(Exception):
                close.first.click(timeout=1500)
        with contextlib.suppress(Exception):
            page.get_by_text("Show diff only").click(timeout=1500)
            page.get_by_text("Show diff only").scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=False)
        return page.inner_text("body")


def main() -> None:
    """Rebuild docs/images/kedro_viz_lineage.png and docs/images/mlflow_compare.png."""
    import mlflow

    images = ROOT / "docs" / "images"
    build = build_viz(ROOT)
    viz_lineage(build, "amr", images / "kedro_viz_lineage.png")
    mlflow.set_tracking_uri(f"sqlite:///{ROOT / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["amr-pipeline"], order_by=["start_time DESC"],
                              filter_string="tags.pipeline = 'amr'", max_results=2)
    if len(runs) >= 2:
        with mlflow_server(ROOT) as url:
            mlflow_comparison(url, runs["experiment_id"].iloc[0], list(runs["run_id"]),
                              images / "mlflow_compare.png")
    print(f"Screenshots written to {images}")


if __name__ == "__main__":
    main()
