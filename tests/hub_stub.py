"""A loopback stand-in for the model hub, for tests that must never reach the internet.

It answers the API routes `huggingface_hub` calls (search, model info at a revision, the file
tree, paths-info, with the hub's error headers) and the `/{repo}/resolve/{revision}/{path}` file
route downloads fetch, with and without HTTP ranges. Knobs make it misbehave on purpose: slow
(`rate`), stalled after some bytes until released (`hold_after` + `release()`), dropping the
connection mid-file (`drop_at`), answering errors first (`statuses`), ignoring ranges, refusing
a gated repository without the token. Every request is logged with its headers.

Point ClaraCore at it with `HF_ENDPOINT` (a subprocess) or `DownloadOptions(hub_endpoint=...)`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "hf_stubtoken_0123456789"  # the one token the stub accepts for gated repositories


@dataclass
class StubFile:
    """A file of a repository. `size`/`sha256` override what the API says (to lie on purpose)."""

    data: bytes
    lfs: bool = True
    size: int | None = None
    sha256: str | None = None
    redirect: str | None = None  # answer downloads with a 302 there, as the hub sends LFS files to its CDN

    @property
    def claimed_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    @property
    def claimed_sha256(self) -> str:
        return self.sha256 or hashlib.sha256(self.data).hexdigest()


@dataclass
class StubRepo:
    id: str
    files: dict[str, StubFile]
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    commit: str = field(default_factory=lambda: hashlib.sha1(str(time.time_ns()).encode()).hexdigest())


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]


class HubStub:
    """Start with `with HubStub() as hub:`; `hub.url` is its endpoint."""

    def __init__(self) -> None:
        self.repos: dict[str, StubRepo] = {}
        self.plain: dict[str, bytes] = {}  # /files/{name}: a non-hub download
        self.log: list[Logged] = []
        self.ranges = True
        self.rate: float | None = None  # bytes per second on file routes
        self.hold_after: int | None = None  # stop a download at this offset until release()
        self.drop_at: list[int] = []  # close the connection at these offsets, one per request
        self.statuses: list[int] = []  # answer file requests with these first, one per request
        self._hold = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._hold.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, repo_id: str, files: dict[str, bytes | StubFile], **options: Any) -> StubRepo:
        repo = StubRepo(
            repo_id, {k: v if isinstance(v, StubFile) else StubFile(v) for k, v in files.items()}, **options
        )
        self.repos[repo_id] = repo
        return repo

    def release(self) -> None:
        """Let held file transfers go on (and every later one pass the hold)."""
        self.hold_after = None
        self._hold.set()

    def requests(self, path_part: str = "", method: str | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if path_part in r.path and (method is None or r.method == method)]

    def ranges_asked(self, path_part: str) -> list[str]:
        """The Range headers of the file requests for `path_part`, in order ("" when none)."""
        return [r.headers.get("range", "") for r in self.requests(path_part, "GET") if "/resolve/" in r.path]


def _handler(stub: HubStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        # ------------------------------------------------------------ plumbing

        def _record(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            with stub._lock:
                stub.log.append(
                    Logged(self.command, parts.path, {k.lower(): v for k, v in self.headers.items()})
                )
            return unquote(parts.path), parse_qs(parts.query)

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _authorized(self, repo: StubRepo) -> bool:
            return not repo.gated or self.headers.get("Authorization") == f"Bearer {TOKEN}"

        def _repo(self, repo_id: str) -> StubRepo | None:
            repo = stub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")  # what the real hub answers
                return None
            if not self._authorized(repo):
                self._error(401 if "Authorization" not in self.headers else 403, "GatedRepo", "gated")
                return None
            return repo

        def _revision(self, repo: StubRepo, revision: str) -> bool:
            if unquote(revision) in ("main", repo.commit):
                return True
            self._error(404, "RevisionNotFound", "Revision not found")
            return False

        # ------------------------------------------------------------ routes

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, query = self._record()
            if path == "/api/models":
                return self._search(query)
            if m := re.match(r"^/api/models/([^/]+/[^/]+)/revision/(.+)$", path):
                return self._info(m[1], m[2])
            if m := re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?$", path):
                return self._tree(m[1], m[2])
            if m := re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path):
                return self._resolve(m[1], m[2], m[3], body=True)
            if m := re.match(r"^/files/(.+)$", path):
                if m[1] in stub.plain:
                    return self._send(stub.plain[m[1]], body=True)
            self._error(404, "EntryNotFound", "not found")

        def do_HEAD(self) -> None:  # noqa: N802
            path, _ = self._record()
            if m := re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path):
                return self._resolve(m[1], m[2], m[3], body=False)
            self._error(404, "EntryNotFound", "not found")

        def do_POST(self) -> None:  # noqa: N802
            path, _ = self._record()
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if m := re.match(r"^/api/models/([^/]+/[^/]+)/paths-info/(.+)$", path):
                return self._paths_info(m[1], m[2], form.get("paths", []))
            self._error(404, "EntryNotFound", "not found")

        def _search(self, query: dict[str, list[str]]) -> None:
            words = (query.get("search") or [""])[0].lower()
            wanted = set(query.get("filter", []))
            found = [
                r
                for r in stub.repos.values()
                if words in r.id.lower()
                and ("gguf" not in wanted or any(f.endswith(".gguf") for f in r.files))
            ]
            found.sort(key=lambda r: -r.downloads)
            limit = int((query.get("limit") or ["1000"])[0])
            self._json(
                200,
                [
                    {
                        "_id": r.commit[:24],
                        "id": r.id,
                        "author": r.id.split("/")[0],
                        "downloads": r.downloads,
                        "likes": r.likes,
                        "lastModified": "2025-01-02T03:04:05.000Z",
                        "gated": "manual" if r.gated else False,
                        "pipeline_tag": "text-generation",
                        "tags": ["gguf"],
                    }
                    for r in found[:limit]
                ],
            )

        def _info(self, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._revision(repo, revision):
                return
            self._json(
                200,
                {
                    "_id": repo.commit[:24],
                    "id": repo.id,
                    "sha": repo.commit,
                    "gated": "manual" if repo.gated else False,
                    "siblings": [{"rfilename": name} for name in repo.files],
                },
            )

        def _entry(self, name: str, f: StubFile) -> dict[str, Any]:
            entry: dict[str, Any] = {
                "type": "file",
                "path": name,
                "size": f.claimed_size,
                "oid": hashlib.sha1(f.data).hexdigest(),
            }
            if f.lfs:
                entry["lfs"] = {"oid": f.claimed_sha256, "size": f.claimed_size, "pointerSize": 134}
            return entry

        def _tree(self, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._revision(repo, revision):
                return
            folders = sorted({name.rsplit("/", 1)[0] for name in repo.files if "/" in name})
            entries = [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in folders]
            self._json(200, entries + [self._entry(n, f) for n, f in sorted(repo.files.items())])

        def _paths_info(self, repo_id: str, revision: str, paths: list[str]) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._revision(repo, revision):
                return
            self._json(200, [self._entry(p, repo.files[p]) for p in paths if p in repo.files])

        def _resolve(self, repo_id: str, revision: str, name: str, *, body: bool) -> None:
            repo = self._repo(repo_id)
            if repo is None or not self._revision(repo, revision):
                return
            f = repo.files.get(name)
            if f is None:
                return self._error(404, "EntryNotFound", f"{name} not found")
            if f.redirect:
                self.send_response(302)
                self.send_header("Location", f.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(f.data, body=body, etag=f'"{hashlib.sha256(f.data).hexdigest()}"', commit=repo.commit)

        def _send(self, data: bytes, *, body: bool, etag: str = "", commit: str = "") -> None:
            with stub._lock:
                status = stub.statuses.pop(0) if stub.statuses and body else None
                drop = stub.drop_at.pop(0) if stub.drop_at and body and status is None else None
            if status is not None:
                return self._json(status, {"error": "on purpose"}, {"Retry-After": "0"})
            start = 0
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            use_range = stub.ranges and wanted and (if_range is None or if_range == etag)
            if use_range and (m := re.match(r"^bytes=(\d+)-(\d*)$", wanted or "")):
                start = int(m[1])
                end = int(m[2]) if m[2] else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                chunk = data[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{start + len(chunk) - 1}/{len(data)}")
            else:
                chunk = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes" if stub.ranges else "none")
            if etag:
                self.send_header("ETag", etag)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.end_headers()
            if body:
                # A bounded range (`bytes=0-N`) is a peek at a header, not a download: never held.
                bounded = bool(use_range and re.match(r"^bytes=\d+-\d+$", wanted or ""))
                self._stream(chunk, start, drop, held=not bounded)

        def _stream(self, chunk: bytes, start: int, drop: int | None, *, held: bool) -> None:
            """Send `chunk` (the file from offset `start`), slowly, held or cut as the knobs say."""
            step = 16 << 10
            at = 0
            try:
                while at < len(chunk):
                    offset = start + at
                    hold = stub.hold_after if held else None
                    if hold is not None and offset >= hold:
                        stub._hold.wait(60)
                    if drop is not None and offset >= drop:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)  # mid-file: the client sees the body end early
                        return
                    limit = len(chunk) - at
                    for mark in (hold, drop):
                        if mark is not None and offset < mark:
                            limit = min(limit, mark - offset)
                    piece = chunk[at : at + min(step, limit)]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    at += len(piece)
                    if stub.rate:
                        time.sleep(len(piece) / stub.rate)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (a pause, a cancel): nothing to do

    return Handler


def _has_gguf(repo: StubRepo) -> bool:
    return any(name.endswith(".gguf") for name in repo.files)
