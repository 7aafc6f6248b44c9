"""Wire types of the download and hub-search API (`/api/models/download*`, `/api/models/search*`).

Everything that names a place on disk is checked here, before anything runs: a `filename` or
`mmproj` is a relative path that stays inside the target folder (no `..`, no absolute path, no
NUL or control character), a `modelId` is a plain name, a URL is http(s). The download body
forbids unknown fields, so a misspelt `revison` is a 400 rather than a silent download of `main`.
The answers are typed too, so the OpenAPI document shows the UI every field it gets.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

#: What a download goes through; completed, failed and cancelled are final (failed can be resumed).
DownloadState = Literal["queued", "downloading", "paused", "verifying", "completed", "failed", "cancelled"]
#: Where a model would run on this machine: wholly on the GPU, split between GPU and RAM, on the
#: CPU from RAM, or nowhere; unknown when its header could not be read.
FitVerdict = Literal["gpu", "partial", "ram", "too_big", "unknown"]

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _printable(value: str) -> str:
    if any(not c.isprintable() for c in value):
        raise ValueError("must not contain NUL or control characters")
    return value


def relative_path(value: str) -> str:
    """A path inside a folder: relative, `/`-separated, no empty, `.` or `..` part."""
    _printable(value)
    if not value.strip():
        raise ValueError("must not be empty")
    if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError("must be a path relative to the target folder, not an absolute one")
    parts = value.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError("must not contain empty, '.' or '..' parts (it would leave the target folder)")
    return "/".join(parts)


def repo_id(value: str) -> str:
    """A hub repository id, `owner/name`."""
    if not _REPO.match(value) or ".." in value:
        raise ValueError("must be a hub repository id, owner/name")
    return value


def revision(value: str) -> str:
    """A branch, tag or commit name."""
    _printable(value)
    if not value.strip() or ".." in value or len(value) > 256:
        raise ValueError("must be a branch, tag or commit")
    return value


class DownloadRequest(BaseModel):
    """POST /api/models/download: a file from the hub (`repo` + `filename`) or from a URL.

    A split model's first part brings its other parts; `mmproj` adds a vision projector from the
    same repository; both travel as one download. `targetDir` defaults to `$CLARACORE_HOME/models`
    (hub files in `<org>/<repo>/` below it). `hfApiKey` is used for this download only (else the
    stored token, else `HF_TOKEN`) and is sent to the hub alone, never to another host.
    """

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=4096)
    modelId: str | None = Field(default=None, max_length=128)
    filename: str | None = Field(default=None, max_length=1024)
    hfApiKey: str | None = Field(default=None, max_length=512)
    repo: str | None = Field(default=None, max_length=200)
    revision: str | None = Field(default=None, max_length=256)
    mmproj: str | None = Field(default=None, max_length=1024)
    sha256: str | None = None
    targetDir: str | None = Field(default=None, max_length=4096)
    autoConfigure: StrictBool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _printable(value)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("filename", "mmproj")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value)

    @field_validator("modelId")
    @classmethod
    def _model_id(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("must be a plain name: letters, digits and . _ - : + (no slashes)")
        return value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        return None if value is None else repo_id(value)

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        return None if value is None else revision(value)

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("must be 64 hexadecimal characters")
        return None if value is None else value.lower()

    @field_validator("hfApiKey")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError("must not contain spaces or control characters")
        return value or None

    @field_validator("targetDir")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value)


# ---------------------------------------------------------------- answers


class DownloadFile(BaseModel):
    """One file of a download (a split model has several, a projector is one more)."""

    name: str  # relative to the target folder
    path: str  # where it lands once verified
    role: Literal["model", "mmproj"]
    size: int | None
    bytesDone: int
    sha256: str | None  # what it must hash to (None: only its size is checked)
    verified: bool


class DownloadModel(BaseModel):
    """What became of a finished download: registered, and configured unless asked not to."""

    name: str | None  # the config name, when it was configured
    path: str
    mmproj: str | None = None
    configured: bool
    note: str | None = None  # why it was not configured, when it was not


class DownloadStatus(BaseModel):
    """A download as every route and event shows it (never with a token)."""

    id: str
    state: DownloadState
    source: Literal["hub", "url"]
    repo: str | None
    revision: str | None
    commit: str | None
    url: str | None
    modelId: str | None
    filename: str
    targetDir: str
    destination: str
    files: list[DownloadFile]
    totalBytes: int | None
    bytesDone: int
    progress: float | None  # 0..1
    speed: float  # bytes per second, smoothed over the last seconds
    eta: float | None  # seconds
    retries: int
    message: str | None  # what it is doing now (retrying, resuming), in words
    error: str | None  # why it failed, the remote's reason included
    errorCode: str | None
    autoConfigure: bool
    model: DownloadModel | None
    needsRestart: bool
    createdAt: str
    updatedAt: str
    completedAt: str | None


class DownloadList(BaseModel):
    downloads: list[DownloadStatus]


class CancelAllResult(BaseModel):
    message: str
    cancelled: list[str]


# ---------------------------------------------------------------- the hub


class SearchHit(BaseModel):
    """One repository the hub found."""

    id: str
    author: str | None
    downloads: int | None
    likes: int | None
    updated: str | None
    gated: bool
    pipelineTag: str | None
    tags: list[str]


class SearchResult(BaseModel):
    query: str
    results: list[SearchHit]


class Fit(BaseModel):
    """Whether a model fits this machine, as the setup planner would configure it."""

    verdict: FitVerdict
    contextLength: int | None = None
    gpuLayers: int | None = None
    vramBytes: int | None = None
    ramBytes: int | None = None
    reason: str | None = None  # why too_big or unknown
    notes: list[str] = Field(default_factory=list)
    estimated: bool = False  # priced from another quantisation's header, scaled to this size


class RepoModel(BaseModel):
    """One model of a repository: a GGUF file, or all parts of a split one."""

    name: str
    filename: str  # what to send as `filename` (the first part of a split model)
    files: list[str]
    size: int
    quantization: str | None
    split: bool
    complete: bool  # False when a split model misses parts in the repository
    kind: str | None
    mmproj: list[str]  # projectors offered with it (send one as `mmproj`)
    fit: Fit
    recommended: bool


class RepoFiles(BaseModel):
    repo: str
    revision: str
    commit: str | None
    models: list[RepoModel]
    mmproj: list[dict[str, int | str]]  # every projector file: name and size
    hardware: dict[str, int | str]  # what the fits were judged against
