"""How the server hands out the UI: `/` redirect, client routes, caching, public files, no build."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from claracore.server import ui
from tests.e2e.server import running_server, serving


def test_root_redirects_to_the_models_page(ui_built: Path, tiny_llama: Path) -> None:
    with running_server({"models": [{"name": "t", "model": str(tiny_llama)}]}) as (url, _):
        for path in ("/", "/ui"):
            r = httpx.get(url + path)
            assert r.status_code == 307 and r.headers["location"] == "/ui/models", path
        assert httpx.head(url + "/").status_code == 307


def test_client_routes_answer_index_html_uncached_and_assets_are_immutable(
    ui_built: Path, tiny_llama: Path
) -> None:
    index = (ui_built / "index.html").read_text()
    with running_server({"models": [{"name": "t", "model": str(tiny_llama)}]}) as (url, _):
        for path in ("/ui/", "/ui/models", "/ui/chat/speech", "/ui/no/such/page"):
            r = httpx.get(url + path)
            assert r.status_code == 200, path
            assert r.text == index
            assert r.headers["content-type"].startswith("text/html")
            assert r.headers["cache-control"] == "no-cache"
        scripts = re.findall(r'src="/ui/(assets/[^"]+\.js)"', index)
        assert scripts, "index.html names its hashed script"
        r = httpx.get(f"{url}/ui/{scripts[0]}")
        assert r.status_code == 200
        assert "javascript" in r.headers["content-type"]
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        # Gzipped for a browser that accepts it (httpx asks for gzip and inflates), as it is on disk.
        assert r.headers["content-encoding"] == "gzip"
        assert r.content == (ui_built / scripts[0]).read_bytes()
        raw = httpx.get(f"{url}/ui/{scripts[0]}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers and raw.content == r.content
        # A missing asset is a 404, not index.html (a stale page must fail loudly, not parse HTML as JS).
        assert httpx.get(url + "/ui/assets/index-gone.js").status_code == 404
        # Names that try to leave the build folder answer index.html, never another file.
        for sneaky in ("/ui/..%2Fui.py", "/ui/%2e%2e/ui.py", "/ui/assets/..%2F..%2Fui.py"):
            r = httpx.get(url + sneaky)
            assert "def install" not in r.text, sneaky


def test_favicon_and_manifest(ui_built: Path, tiny_llama: Path) -> None:
    with running_server({"models": [{"name": "t", "model": str(tiny_llama)}]}) as (url, _):
        icon = httpx.get(url + "/ui/favicon.ico")
        assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
        manifest = httpx.get(url + "/ui/site.webmanifest")
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        assert manifest.json()["start_url"] == "/ui/models"


def test_the_page_is_public_while_the_api_needs_the_key(ui_built: Path, tiny_llama: Path) -> None:
    config = {"api_key": "ui-test-key-1234", "models": [{"name": "t", "model": str(tiny_llama)}]}
    with running_server(config) as (url, _):
        assert httpx.get(url + "/ui/models").status_code == 200
        assert httpx.get(url + "/ui/favicon.ico").status_code == 200
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/api/settings/system").status_code == 401


def test_without_a_build_every_ui_path_says_how_to_build_it(tmp_path: Path) -> None:
    app = FastAPI()
    ui.install(app, build=tmp_path / "ui_build")
    with serving(app) as url:
        for path in ("/ui/models", "/ui/chat"):
            r = httpx.get(url + path)
            assert r.status_code == 503
            assert "scripts/build_ui.sh" in r.text and "npm ci" in r.text
            assert r.headers["cache-control"] == "no-cache"
        assert httpx.get(url + "/ui/assets/index.js").status_code == 404
        # The build appears while the server runs: the next request serves it.
        (tmp_path / "ui_build").mkdir()
        (tmp_path / "ui_build" / "index.html").write_text("<!doctype html><title>built</title>")
        assert "built" in httpx.get(url + "/ui/models").text
