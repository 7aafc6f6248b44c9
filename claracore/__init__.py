"""ClaraCore: serve local AI models (chat, completions, embeddings, reranking, speech) from one process.

from claracore import Engine
with Engine({"models": [{"name": "smol", "model": "SmolLM2.gguf"}]}) as engine:
    print(engine.chat(model="smol", messages=[{"role": "user", "content": "Hi"}]))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# libllama loads before numpy and every other extension module: see claracore/runtime/__init__.py.
import claracore.runtime  # noqa: F401

# The public names load on first use, so the builder and the config tools don't pull in the
# engine (and with it llama_cpp and numpy) just by importing claracore.
_EXPORTS = {
    "Config": "claracore.config",
    "MemoryBudget": "claracore.config",
    "ModelSpec": "claracore.config",
    "load_config": "claracore.config",
    "save_config": "claracore.config",
    "AsyncEngine": "claracore.engine",
    "Engine": "claracore.engine",
    **dict.fromkeys(
        (
            "ClaraCoreError",
            "ConfigError",
            "ContextLengthExceededError",
            "EngineClosedError",
            "InsufficientMemoryError",
            "InvalidRequestError",
            "ModelLoadError",
            "ModelNotFoundError",
            "ModelUnavailableError",
        ),
        "claracore.errors",
    ),
}

if TYPE_CHECKING:
    from claracore.config import Config, MemoryBudget, ModelSpec, load_config, save_config
    from claracore.engine import AsyncEngine, Engine
    from claracore.errors import (
        ClaraCoreError,
        ConfigError,
        ContextLengthExceededError,
        EngineClosedError,
        InsufficientMemoryError,
        InvalidRequestError,
        ModelLoadError,
        ModelNotFoundError,
        ModelUnavailableError,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'claracore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


__version__ = "0.1.0"

__all__ = [
    "AsyncEngine",
    "ClaraCoreError",
    "Config",
    "ConfigError",
    "ContextLengthExceededError",
    "Engine",
    "EngineClosedError",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "MemoryBudget",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelUnavailableError",
    "__version__",
    "load_config",
    "save_config",
]
