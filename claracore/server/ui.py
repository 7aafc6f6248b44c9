"""The web UI's files at `/ui/`: the built single-page app, and `/` redirecting to it.

The UI is built from `ui/` (React + Vite) into `ui_build/` beside this module, so a wheel ships
it as package data. The build is gitignored: `scripts/build_ui.sh` (which `serve.sh` and
`test.sh` run) makes it. Without a build, every UI path answers a short page saying how to make
one, rather than a bare 404 that leaves a new user guessing.

Caching follows from Vite's output: files under `assets/` carry a content hash in their names,
so a browser may keep them for a year; `index.html` names the current hashes, so it is never
cached. Any other path under `/ui/` is a client-side route and answers `index.html`. The assets
go out gzipped to browsers that accept it (the entry script is ~316 kB, ~101 kB gzipped); only
they, never the API's streams, pass through the compressor.

The files are public (the page asks for the API key itself and sends it with every API call),
so nothing here depends on the key.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

BUILD_DIR = Path(__file__).with_name("ui_build")
HOME = "/ui/models"
_IMMUTABLE = "public, max-age=31536000, immutable"
_NO_CACHE = "no-cache"
_TOP_LEVEL_CACHE = "public, max-age=3600"  # favicon, manifest, icons: unhashed, rarely changed
_MEDIA_TYPES = {".webmanifest": "application/manifest+json"}  # not in every OS's mime table

_NO_BUILD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ClaraCore: the web UI is not built</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
color:#1f2937}}code,pre{{background:#f3f4f6;border-radius:6px}}pre{{padding:.75rem 1rem}}
code{{padding:0 .25rem}}</style></head>
<body><h1>The web UI is not built yet</h1>
<p>This ClaraCore server is running: the OpenAI API is at <code>/v1</code> and the management
API at <code>/api</code>. Only the browser interface is missing, because it has not been built
from its sources in <code>ui/</code> (it needs Node.js 20 or newer and npm).</p>
<p>From the repository root, run:</p>
<pre>./scripts/build_ui.sh</pre>
<p>or by hand:</p>
<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>Then reload this page; the server does not need a restart. The build goes to
<code>{build}</code>.</p>
</body></html>
"""


class _Assets(StaticFiles):
    """Vite's hashed assets: cached for a year, and a plain 404 while there is no build yet."""

    async def check_config(self) -> None:
        # StaticFiles refuses to serve (a 500) when its folder is missing; the folder appears
        # when the UI is built, possibly while the server runs, so a missing one is just empty.
        return None

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = _IMMUTABLE
        return response


def install(app: FastAPI, build: Path = BUILD_DIR) -> None:
    """Add `/` (a redirect), `/ui/assets/*` and the catch-all `/ui/*` to `app`.

    Registered last, so `/ui/*` never shadows an API route. The build is looked up per request:
    building the UI while the server runs makes it appear on the next reload.
    """
    assets = _Assets(directory=build / "assets", check_dir=False)
    app.mount("/ui/assets", GZipMiddleware(assets, minimum_size=1024), name="ui-assets")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(HOME)

    @app.api_route("/ui", methods=["GET", "HEAD"], include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(HOME)

    @app.api_route("/ui/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def page(path: str) -> Response:
        index = build / "index.html"
        if not index.is_file():
            body = _NO_BUILD.format(build=html.escape(str(build)))
            return HTMLResponse(body, status_code=503, headers={"Cache-Control": _NO_CACHE})
        # Top-level files (favicon.ico, site.webmanifest, icons) by exact name only, so no path
        # can reach outside the build folder.
        if path and "/" not in path and path != index.name:
            top = {f.name: f for f in build.iterdir() if f.is_file()}
            if path in top:
                file = top[path]
                headers = {"Cache-Control": _TOP_LEVEL_CACHE}
                return FileResponse(file, media_type=_MEDIA_TYPES.get(file.suffix), headers=headers)
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": _NO_CACHE})
