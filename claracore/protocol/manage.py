"""Wire types of the management API (`/api`): every request body, validated before anything runs.

The settings bodies forbid unknown fields so a misspelt setting (`requireApikey`) is a 400
naming it rather than a silent no-op, and bound every number so `vramGB: -3` or
`preferredContext: 10**9` never reach the planner. The other bodies ignore fields they do not
know, as they always have. Model fields (`POST /api/config/model/{id}`) and setup options are
plain objects here: the config schema and `PlanOptions.from_api` validate them, naming the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

GpuType = Literal["nvidia", "amd", "intel", "apple", "none", "cpu"]
Backend = Literal["auto", "cuda", "rocm", "vulkan", "metal", "cpu"]

# The settings keys (non-secret preferences) that GET /api/settings/system returns as stored.
PREFERENCES = (
    "gpuType",
    "backend",
    "vramGB",
    "ramGB",
    "preferredContext",
    "throughputFirst",
    "enableJinja",
    "maxConcurrentDownloads",
)


def _secret(value: str | None) -> str | None:
    """Empty clears; otherwise at least 8 printable characters without spaces (a header value)."""
    if value is None or value == "":
        return value
    if len(value) < 8:
        raise ValueError("must be at least 8 characters (or empty to clear it)")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


class SystemSettingsUpdate(BaseModel):
    """POST /api/settings/system: any subset of the spec's fields; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    gpuType: GpuType | None = None
    backend: Backend | None = None
    vramGB: float | None = Field(default=None, ge=0, le=4096, allow_inf_nan=False)
    ramGB: float | None = Field(default=None, ge=0, le=65536, allow_inf_nan=False)
    preferredContext: int | None = Field(default=None, ge=256, le=1 << 24)
    throughputFirst: StrictBool | None = None
    enableJinja: StrictBool | None = None
    maxConcurrentDownloads: int | None = Field(default=None, ge=1, le=16)  # the rest wait queued
    requireApiKey: StrictBool | None = None
    apiKey: str | None = Field(default=None, max_length=512)

    @field_validator("apiKey")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        return _secret(value)


class HFKeyUpdate(BaseModel):
    """POST /api/settings/hf-api-key: the token downloads will send; "" removes it."""

    model_config = ConfigDict(extra="forbid")
    apiKey: str = Field(max_length=512)

    @field_validator("apiKey")
    @classmethod
    def _check_key(cls, value: str) -> str:
        return _secret(value) or ""


# ---------------------------------------------------------------- folders and scans


class AddFoldersRequest(BaseModel):
    """POST /api/config/folders: track (and scan) these folders."""

    model_config = ConfigDict(extra="ignore")
    folderPaths: list[str]
    recursive: bool = True


class RemoveFoldersRequest(BaseModel):
    """DELETE /api/config/folders: stop tracking these folders."""

    model_config = ConfigDict(extra="ignore")
    folderPaths: list[str]


class ScanFolderRequest(BaseModel):
    """POST /api/config/scan-folder: scan one folder, tracking it too with `addToDatabase`."""

    model_config = ConfigDict(extra="ignore")
    folderPath: str
    recursive: bool = True
    addToDatabase: bool = False


# ---------------------------------------------------------------- config edits and setup


class AppendOptions(BaseModel):
    """The spec's append options; `enableJinja` is accepted for compatibility (always Jinja here)."""

    model_config = ConfigDict(extra="forbid")
    enableJinja: StrictBool | None = None
    throughputFirst: StrictBool | None = None


class AddModelRequest(BaseModel):
    """POST /api/config/add-model: one model file or folder, optionally named."""

    model_config = ConfigDict(extra="ignore")
    modelPath: str = ""
    modelName: str | None = None
    options: AppendOptions | None = None


class AppendModelRequest(BaseModel):
    """POST /api/config/append-model: one model file or folder, with the append options."""

    model_config = ConfigDict(extra="ignore")
    filePath: str = ""
    modelName: str | None = None
    options: AppendOptions | None = None


class RegenerateRequest(BaseModel):
    """POST /api/config/regenerate-from-db: `{"options": {...}}` (generate-all takes them bare)."""

    model_config = ConfigDict(extra="ignore")
    options: dict[str, Any] | None = None
