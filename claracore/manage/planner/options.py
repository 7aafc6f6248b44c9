"""What the planner is told: the machine and the user's options, validated at the API's edge.

Options arrive as camelCase JSON from `/api/setup` and as saved settings, so every value is
checked here, once, with a 400 that names the bad key; the planning itself then trusts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claracore.errors import InvalidRequestError
from claracore.hardware.probe import Detection

BACKENDS = ("cpu", "cuda", "rocm", "vulkan", "metal")
MAX_CONTEXT = 1 << 24  # 16M tokens: beyond every trained context that exists; more is a typo
MAX_MEMORY_GB = 1 << 16  # 64 TiB
_OPTION_KEYS = {
    "forceBackend": "force_backend",
    "forceVRAM": "force_vram_gb",
    "forceRAM": "force_ram_gb",
    "enableJinja": "enable_jinja",
    "throughputFirst": "throughput_first",
    "minContext": "min_context",
    "preferredContext": "preferred_context",
}
#: The option names a setup request may send (the API's camelCase).
OPTION_KEYS = tuple(_OPTION_KEYS)


@dataclass(frozen=True)
class Hardware:
    """The machine as the planner sees it: totals in bytes and the backend llama.cpp would use."""

    vram_bytes: int
    ram_bytes: int
    backend: str = "cpu"

    @classmethod
    def from_detection(cls, detection: Detection) -> Hardware:
        """From what the probes found, in exact bytes (the HTTP shape rounds to 0.1 GB)."""
        return cls(
            vram_bytes=detection.total_vram,
            ram_bytes=detection.ram_total,
            backend=detection.recommended_backend,
        )


@dataclass(frozen=True)
class PlanOptions:
    """The spec's generation options, validated; None on a force_* field means "detect"."""

    force_backend: str | None = None
    force_vram_gb: float | None = None
    force_ram_gb: float | None = None
    enable_jinja: bool = True
    throughput_first: bool = False
    min_context: int = 2048
    preferred_context: int = 8192

    @classmethod
    def from_api(
        cls, data: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
    ) -> PlanOptions:
        """Parse the spec's camelCase options; raise InvalidRequestError (400) naming the bad one.

        Unknown keys are rejected: a misspelt option would otherwise be an option that does
        nothing. `defaults` (same keys) fill what the request leaves out, e.g. saved settings.
        """
        if data is not None and not isinstance(data, Mapping):
            raise InvalidRequestError("options must be an object", param="options")
        merged = {**(defaults or {}), **(data or {})}
        unknown = sorted(set(data or {}) - set(_OPTION_KEYS))
        if unknown:
            raise InvalidRequestError(
                f"unknown option(s): {', '.join(unknown)}; known: {', '.join(_OPTION_KEYS)}",
                param=unknown[0],
            )
        values: dict[str, Any] = {}
        for key, attr in _OPTION_KEYS.items():
            value = merged.get(key)
            if value is None:
                continue
            values[attr] = _check(key, value)
        options = cls(**values)
        if not options.enable_jinja:
            raise InvalidRequestError(
                "enableJinja=false is not supported: chat prompts are always rendered from the "
                "model's Jinja template (there is no non-Jinja template engine to fall back to)",
                param="enableJinja",
            )
        if options.preferred_context < options.min_context:
            raise InvalidRequestError(
                f"preferredContext ({options.preferred_context}) is below minContext ({options.min_context})",
                param="preferredContext",
            )
        return options


def _check(key: str, value: Any) -> Any:
    if key == "forceBackend":
        if not isinstance(value, str) or value.strip().lower() not in (*BACKENDS, "auto"):
            raise InvalidRequestError(f"{key}: expected one of {', '.join(BACKENDS)}", param=key)
        backend = value.strip().lower()
        return None if backend == "auto" else backend
    if key in ("enableJinja", "throughputFirst"):
        if not isinstance(value, bool):
            raise InvalidRequestError(f"{key}: expected true or false", param=key)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{key}: expected a number (got {value!r})", param=key)
    if key in ("forceVRAM", "forceRAM"):
        if not 0 <= value <= MAX_MEMORY_GB or value != value:
            raise InvalidRequestError(
                f"{key}: expected GB between 0 and {MAX_MEMORY_GB} (got {value})", param=key
            )
        if key == "forceRAM" and value == 0:
            raise InvalidRequestError(f"{key}: a machine needs some RAM (got 0)", param=key)
        return float(value)
    if value != int(value) or not 16 <= value <= MAX_CONTEXT:
        raise InvalidRequestError(
            f"{key}: expected whole tokens between 16 and {MAX_CONTEXT} (got {value})", param=key
        )
    return int(value)
