"""The exception hierarchy of ClaraCore.

Every error a caller can cause or meet is one of these, raised rather than returned, so the
HTTP layer maps them through one table (class -> status and envelope) and Python callers can
catch by kind. Nothing here knows about HTTP.

    ClaraCoreError                     code INTERNAL_ERROR
    ├── InvalidRequestError            code INVALID_REQUEST       (names the field)
    │   ├── ContextLengthExceededError code CONTEXT_LENGTH_EXCEEDED
    │   └── PayloadTooLargeError       code PAYLOAD_TOO_LARGE     (over a configured size limit)
    ├── ConfigError                    code INVALID_CONFIG        (names file and key path)
    ├── ModelNotFoundError             code MODEL_NOT_FOUND       (lists the available models)
    ├── ConflictError                  code ALREADY_EXISTS        (e.g. a folder already tracked)
    ├── ModelLoadError                 code MODEL_LOAD_FAILED     (missing or corrupt file)
    ├── InsufficientMemoryError        code INSUFFICIENT_MEMORY   (needed vs available)
    ├── ModelUnavailableError          code MODEL_UNAVAILABLE     (unloaded while a request waited)
    │   └── ServerRestartingError      code SERVER_RESTARTING     (a hard restart ends the stream)
    ├── EngineClosedError              code ENGINE_CLOSED
    ├── NotFoundError                  code NOT_FOUND (or a finer one: DOWNLOAD_NOT_FOUND, REPO_NOT_FOUND…)
    └── RemoteError                    code REMOTE_ERROR          (the model hub or a URL failed)
        └── RemoteAccessError          code REMOTE_ACCESS_DENIED  (it refused: gated, private, bad token)
"""

from __future__ import annotations

from typing import Any

from claracore.units import MIB


class ClaraCoreError(Exception):
    """Base class; `code` is the stable machine-readable name, `details` extra structured data."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidRequestError(ClaraCoreError):
    """A request argument is wrong; `param` names it (dotted path, e.g. ``messages.0.role``)."""

    code = "INVALID_REQUEST"

    def __init__(
        self, message: str, *, param: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.param = param


class ContextLengthExceededError(InvalidRequestError):
    """The prompt does not fit the model's context; raised before any decode."""

    code = "CONTEXT_LENGTH_EXCEEDED"


class PayloadTooLargeError(InvalidRequestError):
    """An upload or body is over its configured limit (`max_upload_mb`, `max_body_mb`)."""

    code = "PAYLOAD_TOO_LARGE"


class ConfigError(ClaraCoreError):
    """The configuration is invalid; the message names the file and every bad key path."""

    code = "INVALID_CONFIG"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message, details={"file": path, "errors": errors or []})
        self.path = path
        self.errors = errors or []


class ModelNotFoundError(ClaraCoreError):
    """No model (or alias) has this name."""

    code = "MODEL_NOT_FOUND"

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"model '{name}' not found; available: {', '.join(available) or '(none)'}",
            details={"modelId": name, "availableModels": available},
        )
        self.name = name
        self.available = available


class ConflictError(ClaraCoreError):
    """The thing to create already exists (a tracked folder, a model name)."""

    code = "ALREADY_EXISTS"


class ModelLoadError(ClaraCoreError):
    """The model's file is missing, unreadable or rejected by its runtime.

    The pool marks the model failed with this reason; other models are unaffected.
    """

    code = "MODEL_LOAD_FAILED"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"model '{name}' failed to load: {reason}", details={"modelId": name, "reason": reason}
        )
        self.name = name
        self.reason = reason


class InsufficientMemoryError(ClaraCoreError):
    """The model cannot fit the memory budget, even after evicting every idle model."""

    code = "INSUFFICIENT_MEMORY"

    def __init__(self, name: str, needed: dict[str, int], available: dict[str, int], why: str) -> None:
        def fmt(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v / MIB:.0f} MiB" for k, v in d.items() if v)

        super().__init__(
            f"model '{name}' does not fit: needs {fmt(needed) or '0 MiB'}, "
            f"available {fmt(available) or '0 MiB'} ({why})",
            details={"modelId": name, "needed": needed, "available": available},
        )
        self.name = name
        self.needed = needed
        self.available = available


class ModelUnavailableError(ClaraCoreError):
    """The model was unloaded or is shutting down while the request was queued for it."""

    code = "MODEL_UNAVAILABLE"


class ServerRestartingError(ModelUnavailableError):
    """The server is restarting (a hard restart): an open stream ends early; retry shortly."""

    code = "SERVER_RESTARTING"


class EngineClosedError(ClaraCoreError):
    """The engine has been closed; create a new one."""

    code = "ENGINE_CLOSED"


class NotFoundError(ClaraCoreError):
    """Something other than a model does not exist: a download, a hub repository, revision or file.

    `code` may be given to say which (`DOWNLOAD_NOT_FOUND`, `REPO_NOT_FOUND`, `FILE_NOT_FOUND`…).
    """

    code = "NOT_FOUND"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        if code is not None:
            self.code = code


class RemoteError(ClaraCoreError):
    """A remote server (the model hub, a download URL) could not be reached or failed.

    `status` is its HTTP status, 0 when it never answered.
    """

    code = "REMOTE_ERROR"

    def __init__(self, message: str, *, status: int = 0, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"remoteStatus": status, **(details or {})})
        self.status = status


class RemoteAccessError(RemoteError):
    """The remote refused access: a gated or private repository, or a missing or wrong token."""

    code = "REMOTE_ACCESS_DENIED"
