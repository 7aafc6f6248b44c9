"""A download request becomes a download: which files, from where, to where, checked against what.

Hub requests (`repo` + `filename`, or a URL of the hub's `/resolve/` form) are resolved through
the hub before anything is accepted: the revision is pinned to its commit, a split model's other
parts and the projector join the same download, and every file gets the size and LFS sha256 the
hub published. Any other http(s) URL is fetched as it is, checked against the `sha256` the
request gives (else only its size). Every destination is resolved and must stay inside the
target folder, symlinks included; all of it raises a 4xx before a byte is fetched.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from claracore.errors import InvalidRequestError
from claracore.manage.downloads.catalog import is_projector, split_paths
from claracore.manage.downloads.hub import Hub
from claracore.manage.downloads.records import Download, DownloadFile
from claracore.protocol.downloads import DownloadRequest, relative_path


def new_id() -> str:
    """Ids sort in creation order (milliseconds first), so the queue survives a restart in order."""
    return f"dl-{time.time_ns() // 1_000_000:x}{secrets.token_hex(3)}"


def new_download(req: DownloadRequest, hub: Hub, models_dir: Path, token: str | None) -> Download:
    """The download `req` asks for (blocking: asks the hub). Raises InvalidRequestError (400),
    NotFoundError (404: repository, revision or file), RemoteAccessError (403), RemoteError (502)."""
    if bool(req.url) == bool(req.repo):
        field = "url" if req.url else "repo"
        raise InvalidRequestError(f"{field}: give either `url` or `repo` (with `filename`)", param=field)
    on_hub = hub.parse_url(req.url) if req.url else None
    if req.repo or on_hub:
        return _from_hub(req, hub, models_dir, token, on_hub)
    if req.mmproj:
        raise InvalidRequestError("mmproj: only a hub download can bring a projector", param="mmproj")
    assert req.url is not None
    name = req.filename or _url_name(req.url)
    target = _target(req.targetDir, models_dir)
    files = [DownloadFile(name=name, url=req.url, size=None, sha256=req.sha256)]
    return _download(req, "url", target, files, track=_track(req, target, models_dir), url=req.url)


def _from_hub(
    req: DownloadRequest, hub: Hub, models_dir: Path, token: str | None, on_hub: tuple[str, str, str] | None
) -> Download:
    if on_hub is not None:
        repo, revision, path = on_hub
        revision = req.revision or revision
    else:
        assert req.repo is not None
        if not req.filename:
            raise InvalidRequestError("filename: which file of the repository to download", param="filename")
        repo, revision, path = req.repo, req.revision or "main", req.filename
    path = relative_path(path)
    if is_projector(path):
        raise InvalidRequestError(
            "filename: that is a projector; send the model as filename, it as mmproj", param="filename"
        )
    parts = split_paths(path)
    paths = parts + ([req.mmproj] if req.mmproj else [])
    resolved = hub.resolve(repo, paths, revision, token)
    names = list(paths)
    if on_hub is not None and req.filename:  # the spec's form: a URL saved under the name given
        if len(parts) > 1:
            raise InvalidRequestError(
                "filename: a split model keeps its parts' names; leave it out", param="filename"
            )
        names[0] = req.filename
    default = models_dir / repo
    target = _target(req.targetDir, default)
    files = [
        DownloadFile(
            name=name,
            url=hub.file_url(repo, f.path, resolved.commit),
            size=f.size,
            sha256=req.sha256 if i == 0 and req.sha256 else f.sha256,
            role="mmproj" if req.mmproj and i == len(paths) - 1 else "model",
        )
        for i, (name, f) in enumerate(zip(names, resolved.files, strict=True))
    ]
    return _download(
        req,
        "hub",
        target,
        files,
        track=_track(req, target, models_dir),
        repo=repo,
        revision=revision,
        commit=resolved.commit,
        url=req.url,
    )


def _download(
    req: DownloadRequest,
    source: str,
    target: Path,
    files: list[DownloadFile],
    *,
    track: Path,
    repo: str | None = None,
    revision: str | None = None,
    commit: str | None = None,
    url: str | None = None,
) -> Download:
    for f in files:
        for path in (f.path(target), f.part(target)):
            if not path.resolve().is_relative_to(target):
                raise InvalidRequestError(f"filename: {f.name} would land outside {target}", param="filename")
    return Download(
        id=new_id(),
        source=source,
        target_dir=str(target),
        files=files,
        repo=repo,
        revision=revision,
        commit=commit,
        url=url,
        model_id=req.modelId,
        track_dir=str(track),
        auto_configure=req.autoConfigure,
        token=req.hfApiKey,
    )


def _url_name(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    try:
        return relative_path(name)
    except ValueError:
        raise InvalidRequestError(
            "filename: the URL names no file; give `filename`", param="filename"
        ) from None


def _target(raw: str | None, default: Path) -> Path:
    """The target folder, resolved; it need not exist yet, but what exists of it must be writable."""
    if raw is None:
        path = default
    else:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise InvalidRequestError(f"targetDir: must be an absolute path, got {raw!r}", param="targetDir")
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise InvalidRequestError(f"targetDir: {path} is not a folder", param="targetDir")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidRequestError(f"targetDir: {existing} is not writable", param="targetDir")
    return path


def _track(req: DownloadRequest, target: Path, models_dir: Path) -> Path:
    """The folder to track once done: the models root for the default place, else the target."""
    return models_dir.resolve() if req.targetDir is None else target
