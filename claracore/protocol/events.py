"""The payloads of the event bus's types, as `GET /api/events` sends them inside `{"type", "data"}`.

TypedDicts rather than pydantic models: publishers build plain dicts on hot paths (a loader
thread, the request that just finished), and the types only document the contract and let mypy
check the publishers. Keys are camelCase, as in the rest of the management API.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

#: What a model is doing. `evicted` is a moment, not a state: the pool chose to unload the
#: model to make room for another, and an `unloaded` event follows once its memory is free.
ModelState = Literal["unloaded", "loading", "loaded", "unloading", "evicted", "failed"]


class Bytes(TypedDict):
    vramBytes: int
    ramBytes: int


class ModelMemory(TypedDict):
    estimate: Bytes | None  # what the pool budgeted (from the GGUF, before loading)
    measured: Bytes | None  # what llama.cpp reported allocating (None for speech models)


class ModelEvent(TypedDict, total=False):
    """type "model": one model's state changed (or its load moved on)."""

    model: str  # the configured name
    type: str  # llm, embedding, reranker, stt, tts
    state: ModelState
    progress: float  # loading only: 0.0 to 1.0, from llama.cpp's load-progress callback
    seconds: float  # loaded: how long the load took
    memory: ModelMemory  # loaded
    reason: str  # evicted/unloading/unloaded: why ("to make room for b", "idle past ttl", ...)
    by: str  # evicted: the model that needed the room
    error: str  # failed (or unloaded after a load that did not fit): what went wrong


class LogEvent(TypedDict):
    """type "log": one log line, ClaraCore's own or llama.cpp's (through its log callback)."""

    time: str  # ISO 8601 UTC with milliseconds
    level: str  # debug, info, warning, error, critical
    source: str  # claracore, llama.cpp, uvicorn, ... (the logger's family)
    logger: str  # the full logger name, e.g. claracore.pool.pool
    message: str


class RequestEvent(TypedDict):
    """type "request": one inference request finished (the row `GET /api/activity` lists)."""

    id: str
    time: str  # when it started, ISO 8601 UTC with milliseconds
    route: str  # "POST /v1/chat/completions", or the engine method for Python callers ("chat")
    model: str  # the configured name when it resolved, else what the client asked for
    client: str | None  # the client's address, over HTTP
    stream: bool
    promptTokens: int
    completionTokens: int
    cachedTokens: int
    ttft: float | None  # seconds to the first generated token
    duration: float  # seconds, start to the last byte
    tokensPerSecond: float | None  # generation speed: completion tokens after the first, per second
    status: int | None  # the HTTP status (None for a Python caller)
    errorCode: str | None  # the error's code (MODEL_NOT_FOUND, ...), also for one mid-stream


#: type "download" carries `protocol.downloads.DownloadStatus` (what `GET /api/models/downloads/ID`
#: answers) plus `event`: created, state, progress or removed. The download manager publishes it.
DownloadEvent = dict[str, Any]


class ConfigEvent(TypedDict, total=False):
    """type "config": config.yaml was written, or a soft restart applied it."""

    action: Literal["saved", "applied"]
    path: str  # saved: the file
    what: str  # saved: which edit ("model updated", "setup", ...)
    needsRestart: bool
    models: dict[str, list[str]]  # applied: names by outcome (added, changed, removed, kept)


#: type "setup" carries `GET /api/setup/progress`'s record; type "metrics" carries
#: `GET /api/metrics`'s answer (published every `monitoring.metrics_interval` seconds).
SetupEvent = dict[str, Any]
MetricsEvent = dict[str, Any]
