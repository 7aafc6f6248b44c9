"""Wire types of the management API's settings routes, validated before anything is stored.

Every model forbids unknown fields so a misspelt setting (`requireApikey`) is a 400 naming it
rather than a silent no-op, and bounds every number so `vramGB: -3` or `preferredContext: 10**9`
never reach the planner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

GpuType = Literal["nvidia", "amd", "intel", "apple", "none", "cpu"]
Backend = Literal["auto", "cuda", "rocm", "vulkan", "metal", "cpu"]

# The settings keys (non-secret preferences) that GET /api/settings/system returns as stored.
PREFERENCES = ("gpuType", "backend", "vramGB", "ramGB", "preferredContext", "throughputFirst", "enableJinja")


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
