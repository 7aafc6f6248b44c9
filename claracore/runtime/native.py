"""The seam to libllama: backend start-up, log routing, owning model/context handles, build facts.

llama-cpp-python's own wrappers print every llama.cpp log line to stderr and free native
memory only when the garbage collector gets round to it; a server that loads and unloads
models all day needs logs in `logging` and frees at a moment it chooses. What the installed
build contains (`build_info`) is answered here too, so the doctor and the hardware probes never
import llama_cpp themselves.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import llama_cpp
from gguf import GGMLQuantizationType

from claracore.runtime.loading import current_watch
from claracore.runtime.rpc import device_list as rpc_devices
from claracore.runtime.rpc_loss import hold as rpc_hold

log = logging.getLogger("claracore.llama")

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the last line).
# INFO goes to DEBUG: llama.cpp writes hundreds of INFO lines per model load.
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_init_lock = threading.Lock()
_initialised = False
_listeners: list[Callable[[int, str], None]] = []
# What llama.cpp allocates, as it reports it: "CUDA0 model buffer size =  72.53 MiB". The C API
# has no call for a context's buffer sizes, and these lines are what llama.cpp itself measured.
_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output|RS) buffer size =\s+([\d.]+) MiB")


class _ThreadLog(threading.local):
    """Per thread, because llama.cpp logs on the thread that called it and loads run concurrently:
    the level a continuation line (CONT) inherits, and whether warnings are demoted (new_context)."""

    last_level = logging.DEBUG
    demote_warnings = False


_thread_log = _ThreadLog()


def forward_log(level: int, msg: str) -> None:
    """Route one llama.cpp log line to `logging` (and to any `capture_log` listeners)."""
    state = _thread_log
    py_level = state.last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)
    if state.demote_warnings and py_level == logging.WARNING:
        py_level = logging.INFO
    state.last_level = py_level
    for listener in list(_listeners):
        listener(level, msg)
    watch = current_watch()
    if watch is not None and (m := _BUFFER.search(msg)):
        watch.buffer(m.group(1), m.group(2), round(float(m.group(3)) * 2**20))
    if log.isEnabledFor(py_level) and msg.strip():
        log.log(py_level, "%s", msg.rstrip())


@contextmanager
def warnings_demoted() -> Iterator[None]:
    """llama.cpp's warnings on this thread are logged at INFO while the block runs."""
    _thread_log.demote_warnings = True
    try:
        yield
    finally:
        _thread_log.demote_warnings = False


@llama_cpp.llama_log_callback
def _on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    forward_log(level, text.decode("utf-8", errors="replace"))


def ensure_backend() -> None:
    """Start llama.cpp's backends once per process and route its log to `logging`."""
    global _initialised
    with _init_lock:
        if _initialised:
            return
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
        _initialised = True


@contextmanager
def capture_log() -> Iterator[list[str]]:
    """Collect llama.cpp's log lines while the block runs (used to compare memory reports)."""
    ensure_backend()
    lines: list[str] = []
    listener: Callable[[int, str], None] = lambda _lvl, msg: lines.append(msg)  # noqa: E731
    _listeners.append(listener)
    try:
        yield lines
    finally:
        _listeners.remove(listener)


# ggml's AMX kernels sit behind an extra weight buffer type ("AMX") that a build made with
# -march=native on a CPU reporting AMX contains. In the llama.cpp this package builds they die of
# an illegal instruction at the first tile operation on CPUs whose kernel hands out tile state per
# thread (seen on this project's 2-core machines, and upstream: llama.cpp PR 26954), which takes
# the whole server down. A crash is far worse than the plain kernels, so such a build loads its
# weights without the extra buffer types (llama-server's --no-repack) unless CLARACORE_AMX=1 says
# this machine's AMX works. Builds from the presets (GGML_NATIVE=OFF) have no AMX and keep them.
AMX_OPT_IN = "CLARACORE_AMX"


def extra_buffers_allowed_for(system_info: str, environ: Mapping[str, str]) -> bool:
    """Whether model loads may use ggml's extra buffer types (weight repacking, AMX)."""
    return "AMX_INT8 = 1" not in system_info or environ.get(AMX_OPT_IN) == "1"


@functools.cache
def extra_buffers_allowed() -> bool:
    """`extra_buffers_allowed_for` this process's llama.cpp build; says once when it says no."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    allowed = extra_buffers_allowed_for(info, os.environ)
    if not allowed:
        log.warning(
            "this llama.cpp build contains ggml's AMX kernels, which crash on many machines: loading "
            "weights without repacking (set %s=1 if AMX works here, or rebuild with "
            "`python -m claracore.native build --backend cpu`)",
            AMX_OPT_IN,
        )
    return allowed


@dataclass
class NativeModel:
    """A loaded llama_model and its vocab; `close()` frees the weights at once."""

    model: llama_cpp.llama_model_p
    vocab: llama_cpp.llama_vocab_p
    rpc: tuple[str, ...] = ()  # the workers whose connections it holds

    @classmethod
    def load(
        cls, path: str, *, gpu_layers: int, use_mmap: bool, vocab_only: bool = False, rpc: Sequence[str] = ()
    ) -> NativeModel:
        """Load a GGUF; raises ValueError with a reason when llama.cpp refuses the file.

        `rpc` workers' devices take offloaded layers beside the local GPUs (runtime/rpc.py).
        """
        ensure_backend()
        if not os.path.exists(path):
            raise ValueError(f"file not found: {path}")
        params = llama_cpp.llama_model_default_params()
        devices = rpc_devices(list(rpc))  # referenced until the load returns
        if devices is not None:
            params.devices = ctypes.cast(devices, ctypes.c_void_p)
        params.n_gpu_layers = gpu_layers  # negative: all layers, as llama.h defines it
        params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP if use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE
        params.vocab_only = vocab_only
        params.use_extra_bufts = extra_buffers_allowed()
        watch = current_watch()
        if watch is not None:  # the pool is loading this model: report progress as llama.cpp reads it

            def progress(fraction: float, _user: ctypes.c_void_p) -> bool:
                try:
                    watch.progress(fraction)
                except Exception:  # raising through ctypes would answer False: abort the load
                    log.exception("load progress report failed")
                return True  # go on loading

            callback = llama_cpp.llama_progress_callback(progress)  # referenced until the load returns
            params.progress_callback = callback
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not model:
            raise ValueError("llama.cpp could not load the file (corrupt, truncated or unsupported)")
        vocab = llama_cpp.llama_model_get_vocab(model)
        if devices is not None:
            rpc_hold(rpc, +1)
        return cls(model=model, vocab=vocab, rpc=tuple(rpc) if devices is not None else ())

    def close(self) -> None:
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None  # type: ignore[assignment]
            rpc_hold(self.rpc, -1)


def tokenize(
    vocab: llama_cpp.llama_vocab_p, text: str, *, add_special: bool, parse_special: bool
) -> list[int]:
    """llama.cpp's tokenizer; the first call's buffer fits almost every text, a second fits the rest."""
    raw = text.encode("utf-8")
    cap = len(raw) + 8
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, cap, add_special, parse_special)
    if n < 0:
        cap = -n
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, cap, add_special, parse_special)
    return list(buf[:n])


def new_context(model: NativeModel, params: llama_cpp.llama_context_params) -> llama_cpp.llama_context_p:
    """Create a context; raises ValueError when llama.cpp cannot (usually out of memory).

    With a unified KV cache llama.cpp compares the whole cache (context x parallel) with the
    trained context and warns of an overflow that cannot happen, since no sequence may exceed
    its own share; its warnings while creating the context are logged at INFO instead.
    """
    with warnings_demoted():
        ctx = llama_cpp.llama_init_from_model(model.model, params)
    if not ctx:
        raise ValueError("llama.cpp could not create a context (out of memory, or bad parameters)")
    return ctx


# ggml's type ids, named as llama.cpp's --cache-type-k/v options name them.
CACHE_TYPES: dict[str, int] = {
    name: int(GGMLQuantizationType[name.upper()])
    for name in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
}

FLASH_ATTN: dict[object, int] = {
    "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


def supports_gpu_offload() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


# ---------------------------------------------------------------- what the build contains

_LIB = re.compile(r"^(?:lib)?ggml-([a-z0-9]+)\.(?:so|dylib|dll)$")


@dataclass(frozen=True)
class BuildInfo:
    """The llama.cpp this process loaded: its version, where its libraries lie, what they contain."""

    version: str
    lib_dir: Path
    backends: tuple[str, ...]  # ggml backend libraries next to libllama: "cpu", "cuda", ...
    gpu_offload: bool  # llama_supports_gpu_offload()
    extra_buffers: bool  # extra_buffers_allowed(): weight repacking (and AMX) on


def backend_libraries(lib_dir: Path) -> tuple[str, ...]:
    """The ggml backends built as libraries in `lib_dir` (ggml-base is the core, not a backend)."""
    if not lib_dir.is_dir():
        return ()
    names = {m.group(1) for f in lib_dir.iterdir() if (m := _LIB.match(f.name))}
    return tuple(sorted(names - {"base"}))


def _loaded_lib_dir() -> Path:
    """Where the libllama llama_cpp loaded lives (LLAMA_CPP_LIB_PATH may move it)."""
    import llama_cpp.llama_cpp as low

    name = getattr(getattr(low, "_lib", None), "_name", None)
    return Path(name).parent if name else Path(llama_cpp.__file__).parent / "lib"


def build_info() -> BuildInfo:
    """What the installed llama-cpp-python was compiled with (the doctor and `claracore system` report it)."""
    try:
        version = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH, as gpu_check.sh uses
        version = f"{getattr(llama_cpp, '__version__', 'unknown')} (not pip-installed)"
    lib_dir = _loaded_lib_dir()
    return BuildInfo(
        version=version,
        lib_dir=lib_dir,
        backends=backend_libraries(lib_dir),
        gpu_offload=supports_gpu_offload(),
        extra_buffers=extra_buffers_allowed(),
    )
