"""ClaraCore: serve local AI models (chat, completions, embeddings, reranking, speech) from one process.

from claracore import Engine
with Engine({"models": [{"name": "smol", "model": "SmolLM2.gguf"}]}) as engine:
    print(engine.chat(model="smol", messages=[{"role": "user", "content": "Hi"}]))
"""

# libllama (and with it the GPU runtime) loads before numpy and the other extension modules. On
# a CUDA build the first offloaded load segfaulted in every process that had imported numpy-based
# modules first, and in none that imported llama_cpp first (GPU check, 2026-11-26). The cause is
# not yet understood; this order is what was seen to work.
import llama_cpp  # noqa: F401

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
