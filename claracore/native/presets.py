"""CMake presets → the `CMAKE_ARGS` string llama-cpp-python's build (scikit-build-core) reads.

The presets live in `native/CMakePresets.json` at the top of the repository, beside the rest of
the CMake side; the top-level `CMakePresets.json` includes that file, so `cmake --list-presets`
in a checkout shows them. `claracore/native/CMakePresets.json` is a symbolic link to it, which
the wheel and sdist carry as the file itself, so an installed package has the presets too and
there is one copy to keep right.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESETS_FILE = Path(__file__).with_name("CMakePresets.json")

# The builder's backends: each preset name, and the ggml library a build of it must contain.
BACKENDS: dict[str, str] = {
    "cpu": "ggml-cpu",
    "cuda": "ggml-cuda",
    "rocm": "ggml-hip",
    "vulkan": "ggml-vulkan",
    "metal": "ggml-metal",
    "rpc": "ggml-rpc",
    "cuda-rpc": "ggml-cuda",
}
GPU_BACKENDS = frozenset({"cuda", "rocm", "vulkan", "metal", "cuda-rpc"})

# Variables llama-cpp-python's build sets itself (scikit-build-core drops or overrides them from
# CMAKE_ARGS with a warning), so passing them would only add noise.
_OWNED_BY_BUILD = frozenset({"CMAKE_BUILD_TYPE", "BUILD_SHARED_LIBS"})


@dataclass(frozen=True)
class Preset:
    """One configure preset with its inherited cache variables already merged."""

    name: str
    description: str
    cache: Mapping[str, str] = field(default_factory=dict)


def _value(raw: Any) -> str:
    """A cacheVariables value: a string, a bool, or {"type": ..., "value": ...} per the schema."""
    if isinstance(raw, dict):
        raw = raw.get("value", "")
    if isinstance(raw, bool):
        return "ON" if raw else "OFF"
    return str(raw)


def load_presets(path: Path = PRESETS_FILE) -> dict[str, Preset]:
    """Every visible configure preset in `path`, with `inherits` resolved (parents first)."""
    raw = {p["name"]: p for p in json.loads(path.read_text(encoding="utf-8"))["configurePresets"]}

    def merged(name: str, seen: tuple[str, ...] = ()) -> dict[str, str]:
        if name in seen:
            raise ValueError(f"preset inheritance loop: {' -> '.join((*seen, name))}")
        preset = raw[name]
        parents = preset.get("inherits", [])
        cache: dict[str, str] = {}
        # CMake: earlier parents win over later ones, and the preset's own values win over all.
        for parent in reversed([parents] if isinstance(parents, str) else parents):
            cache.update(merged(parent, (*seen, name)))
        cache.update({k: _value(v) for k, v in preset.get("cacheVariables", {}).items()})
        return cache

    return {
        name: Preset(name=name, description=p.get("description", ""), cache=merged(name))
        for name, p in raw.items()
        if not p.get("hidden", False)
    }


def cmake_args(preset: Preset) -> str:
    """The CMAKE_ARGS for `preset`, quoted for the shell-style split llama-cpp-python applies.

    A list value such as `75;80;86` is quoted so it stays one argument.
    """
    return " ".join(
        shlex.quote(f"-D{key}={value}") for key, value in preset.cache.items() if key not in _OWNED_BY_BUILD
    )
