"""llama.cpp's RPC backend from Python: remote devices for a model, and the worker that serves them.

llama.cpp splits a model's offloaded layers over the devices in `llama_model_params.devices`;
its RPC backend makes a device of each `rpc-server` worker over TCP. llama-cpp-python binds
neither, so this module calls `ggml_backend_rpc_*` through ctypes in the very libraries
llama-cpp-python loaded (a build with `GGML_RPC`, e.g. the `rpc` preset). Both ends must come
from the same llama.cpp, which `claracore worker` guarantees by serving from these libraries too.

ggml-rpc aborts the whole process when it cannot reach a server, so every endpoint is probed
with a plain TCP connect first, and a worker that is gone becomes a `WorkerUnavailableError`
naming it instead of a crash. A worker lost in the middle of a request is caught later, inside
llama.cpp: ggml-rpc's per-worker thread finds the connection broken and calls `GGML_ABORT`.
ggml lets a program see that message before the `abort()` (`ggml_set_abort_callback`) but not
prevent it, so the callback here never returns for ggml-rpc's messages: it marks the workers
that no longer answer as lost, tells the runtimes that use them (`watch`) so they fail their
requests with a 503 naming the worker, and then parks ggml-rpc's thread for good. What waited on
that worker (a decode step, a load) stays blocked and its memory stays allocated until the
process ends; the runtime is written off, and a lost endpoint is refused for the rest of the
process (ggml-rpc would hand the parked connection to a new model), so a worker that comes back
needs a hard restart (POST /api/server/restart/hard) to be used again.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from claracore.errors import InsufficientMemoryError, ModelUnavailableError
from claracore.runtime.loading import current_watch, watching

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds for the TCP probe of a worker
#: RPC_PROTO_MAJOR/MINOR_VERSION of ggml-rpc.h in the llama.cpp that llama-cpp-python 0.3.x vendors.
PROTOCOL = (7, 0)
_HELLO = 14  # RPC_CMD_HELLO
_CAPS = 24  # RPC_CONN_CAPS_SIZE: the HELLO request's body, zeros (no RDMA)


class RpcUnsupportedError(ModelUnavailableError):
    """The installed llama.cpp was built without GGML_RPC (a 503: the model cannot load here)."""

    code = "RPC_UNSUPPORTED"


class WorkerUnavailableError(ModelUnavailableError):
    """An RPC worker a model needs does not answer (a 503); `details.worker` names it."""

    code = "WORKER_UNAVAILABLE"

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(
            f"RPC worker {endpoint} is unavailable ({reason}); start it with `claracore worker`, or "
            "remove it from the model's `rpc` list and reload the model",
            details={"worker": endpoint},
        )


@dataclass(frozen=True)
class RemoteDevice:
    """One device a worker offers: `RPC0[host:port]`-style name, description, memory in bytes."""

    endpoint: str
    name: str
    description: str
    free: int
    total: int

    def to_api(self) -> dict[str, object]:
        return {
            "worker": self.endpoint,
            "name": self.name,
            "description": self.description,
            "freeBytes": self.free,
            "totalBytes": self.total,
        }


_lock = threading.Lock()
_GPU_TYPES = (1, 2)  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU (ggml-backend.h)
_base_lib: ctypes.CDLL | None = None
_libs: tuple[ctypes.CDLL, ctypes.CDLL] | None = None
_servers: dict[str, list[int]] = {}  # endpoint -> its device handles, added once per process
_held: dict[str, int] = {}  # endpoint -> models of this process connected to it (`hold`)
_lost: dict[str, str] = {}  # endpoint -> why: lost mid-request, refused until the process restarts
_watchers: dict[int, tuple[frozenset[str], Callable[[list[str]], None]]] = {}
_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_abort_hook: object = None  # the installed callback, kept alive for the life of the process


def lib_dir() -> Path:
    """The folder of the libllama llama-cpp-python loaded (its `lib/`, or LLAMA_CPP_LIB_PATH)."""
    return Path(llama_cpp.llama_cpp._lib._name).parent


def _library(stem: str) -> Path | None:
    folder = lib_dir()
    return next(iter(sorted(folder.glob(f"lib{stem}.*")) + sorted(folder.glob(f"{stem}.*"))), None)


def _base() -> ctypes.CDLL:
    """libggml (every build has it; its device registry, and libggml-base's device calls through
    it) with the prototypes this module uses."""
    global _base_lib
    if _base_lib is not None:
        return _base_lib
    found = _library("ggml")
    if found is None:
        raise RpcUnsupportedError(f"no libggml beside libllama in {lib_dir()}")
    base = ctypes.CDLL(str(found))
    p, size = ctypes.c_void_p, ctypes.c_size_t
    base.ggml_backend_reg_dev_count.argtypes, base.ggml_backend_reg_dev_count.restype = [p], size
    base.ggml_backend_reg_dev_get.argtypes, base.ggml_backend_reg_dev_get.restype = [p, size], p
    base.ggml_backend_dev_count.argtypes, base.ggml_backend_dev_count.restype = [], size
    base.ggml_backend_dev_get.argtypes, base.ggml_backend_dev_get.restype = [size], p
    base.ggml_backend_dev_type.argtypes, base.ggml_backend_dev_type.restype = [p], ctypes.c_int
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(base, name).argtypes, getattr(base, name).restype = [p], ctypes.c_char_p
    base.ggml_backend_dev_memory.argtypes = [p, ctypes.POINTER(size), ctypes.POINTER(size)]
    base.ggml_backend_dev_memory.restype = None
    _base_lib = base
    return base


def _load() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(libggml, libggml-rpc) with their prototypes; RpcUnsupportedError without RPC."""
    global _libs
    if _libs is not None:
        return _libs
    rpc_file = _library("ggml-rpc")
    if rpc_file is None or not llama_cpp.llama_supports_rpc():
        raise RpcUnsupportedError(
            f"this llama.cpp ({lib_dir()}) was built without RPC: rebuild with "
            "`python -m claracore.native build --backend rpc` (or cuda-rpc)"
        )
    rpc = ctypes.CDLL(str(rpc_file))
    p, size = ctypes.c_void_p, ctypes.c_size_t
    rpc.ggml_backend_rpc_add_server.argtypes, rpc.ggml_backend_rpc_add_server.restype = [ctypes.c_char_p], p
    rpc.ggml_backend_rpc_start_server.argtypes = [ctypes.c_char_p, ctypes.c_char_p, size, size, p]
    rpc.ggml_backend_rpc_start_server.restype = None
    _libs = (_base(), rpc)
    _catch_aborts(_libs[0])
    return _libs


def _catch_aborts(base: ctypes.CDLL) -> None:
    """Install `_on_abort` as ggml's abort callback (libggml-base's, reached through libggml)."""
    global _abort_hook
    setter = getattr(base, "ggml_set_abort_callback", None)
    if setter is None:  # an older ggml: a lost worker aborts the process, as before
        log.warning("this ggml has no ggml_set_abort_callback: a worker lost mid-request ends the process")
        return
    setter.argtypes, setter.restype = [_ABORT_CALLBACK], ctypes.c_void_p
    _abort_hook = _ABORT_CALLBACK(_on_abort)
    setter(_abort_hook)


def _on_abort(message: bytes | None) -> None:
    """ggml's abort callback; for ggml-rpc's messages it never returns (the module docstring says why).

    Any other abort is a bug in llama.cpp: print what ggml would have printed and return, so that
    the process aborts as it always did.
    """
    text = (message or b"").decode("utf-8", errors="replace")
    if "ggml-rpc" not in text:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        return
    # No lock here: the thread that aborts may hold it (a connect inside `_devices_of`), and each
    # read below is one atomic step under the GIL. The suspects: workers some model is connected
    # to or loading onto (the others have no connection that could break).
    watched = {e for uses, _ in list(_watchers.values()) for e in uses}
    suspects = [e for e in {*watched, *(e for e, n in list(_held.items()) if n > 0)} if e not in _lost]
    gone: list[str] = []
    for _ in range(20):  # a killed worker's listening socket may close a moment after its connection
        gone = [e for e in sorted(suspects) if _refuses(e)]
        if gone:
            break
        time.sleep(0.1)
    gone = gone or sorted(suspects)  # all still answer (one came back at once): which broke is unknown
    log.error("lost RPC worker(s) %s mid-request: %s", ", ".join(gone) or "?", text)
    for endpoint in gone:
        _lost[endpoint] = text
    told = [tell for uses, tell in list(_watchers.values()) if uses.intersection(gone)]
    for tell in told:
        try:
            tell(gone)
        except Exception:  # one runtime's failure must not keep the others from hearing
            log.exception("a runtime failed to handle the lost worker")
    threading.Event().wait()  # park ggml-rpc's thread: returning would abort the process


def _refuses(endpoint: str) -> bool:
    """Whether nothing listens at `endpoint` any more. A connect that only times out says nothing:
    a worker busy with our own connection lets a backlog of one wait, then drops the rest."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return False
    except TimeoutError:
        return False
    except (OSError, ValueError) as exc:
        log.debug("RPC worker %s refuses: %r", endpoint, exc)
        return True


def watch(endpoints: Sequence[str], tell: Callable[[list[str]], None]) -> Callable[[], None]:
    """Call `tell(lost endpoints)` (from ggml-rpc's thread) when one of `endpoints` is lost
    mid-request; returns the call that stops watching."""
    key = id(tell)
    with _lock:
        _watchers[key] = (frozenset(endpoints), tell)

    def stop() -> None:
        with _lock:
            _watchers.pop(key, None)

    return stop


def _reach(endpoint: str) -> None:
    """WorkerUnavailableError unless `endpoint` can be used: not lost, and answering.

    A worker serves one client at a time, with a backlog of one: while a model of this process
    holds its connection, a TCP probe would only queue behind it (and the next one time out).
    That connection, which ggml-rpc shares with every new model, is proof enough.
    """
    if endpoint in _lost:
        raise WorkerUnavailableError(
            endpoint, "it was lost mid-request; this process cannot reconnect to it until a hard restart"
        )
    if not _held.get(endpoint):
        probe(endpoint)


def hold(endpoints: Sequence[str], change: int) -> None:
    """Count a model of this process connected to `endpoints` (+1 once loaded, -1 once freed)."""
    with _lock:
        for endpoint in endpoints:
            _held[endpoint] = _held.get(endpoint, 0) + change


def guarded(endpoints: Sequence[str], call: Callable[[], object]) -> object:
    """`call()` (a load over `endpoints`), or a WorkerUnavailableError if one of them is lost
    meanwhile: the call then stays blocked in llama.cpp in a thread of its own, written off."""
    if not endpoints:
        return call()
    done = threading.Event()
    result: dict[str, object] = {}
    progress = current_watch()  # the pool's load progress, a thread-local: carried over

    def run() -> None:
        try:
            with watching(progress) if progress is not None else contextlib.nullcontext():
                result["value"] = call()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            done.set()

    def lost(gone: list[str]) -> None:
        result.setdefault("lost", next(e for e in gone if e in endpoints))
        done.set()

    stop = watch(endpoints, lost)
    try:
        threading.Thread(target=run, name="rpc-load", daemon=True).start()
        done.wait()
    finally:
        stop()
    if "value" in result or "error" in result:
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        return result["value"]
    raise WorkerUnavailableError(str(result["lost"]), "the connection was lost while loading")


def local_gpus() -> int:
    """How many GPU devices this process's llama.cpp sees (RPC devices are never among them)."""
    base = _base()
    devices = (base.ggml_backend_dev_get(i) for i in range(base.ggml_backend_dev_count()))
    return sum(1 for d in devices if base.ggml_backend_dev_type(d) in _GPU_TYPES)


def check_room(model: str, endpoints: list[str], needed: int) -> None:
    """InsufficientMemoryError when the workers' free memory is under what the model puts there."""
    free = sum(d.free for d in remote_devices(endpoints))
    if needed > free:
        why = f"the free memory of RPC workers {', '.join(endpoints)}"
        raise InsufficientMemoryError(model, {"workers": needed}, {"workers": free}, why)


def supported() -> bool:
    """Whether the loaded llama.cpp has the RPC backend."""
    try:
        _load()
    except RpcUnsupportedError:
        return False
    return True


def probe(endpoint: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A TCP connect to `endpoint` ("host:port"); WorkerUnavailableError naming it when it fails."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise WorkerUnavailableError(endpoint, getattr(exc, "strerror", None) or str(exc)) from None


def handshake(endpoint: str, timeout: float = CONNECT_TIMEOUT) -> tuple[int, int, int]:
    """Say HELLO as ggml-rpc does and return the worker's protocol version.

    ggml-rpc aborts the process when a handshake fails (something else on that port, another
    protocol version), so it is done here first. A worker serves one client at a time: one busy
    with another server does not answer in time, and that is reported too.
    """
    host, _, port = endpoint.rpartition(":")
    hello = bytes([_HELLO]) + struct.pack("<Q", _CAPS) + bytes(_CAPS)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall(hello)
            answer = b""
            while len(answer) < 8 + 4 + _CAPS:
                chunk = sock.recv(8 + 4 + _CAPS - len(answer))
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        raise WorkerUnavailableError(
            endpoint, "no answer to the RPC handshake: busy with another server?"
        ) from None
    except (OSError, ValueError) as exc:
        raise WorkerUnavailableError(endpoint, getattr(exc, "strerror", None) or str(exc)) from None
    if len(answer) < 12 or struct.unpack("<Q", answer[:8])[0] != 4 + _CAPS:
        raise WorkerUnavailableError(endpoint, "it does not speak llama.cpp's RPC protocol")
    version = (answer[8], answer[9], answer[10])
    if version[0] != PROTOCOL[0] or version[1] > PROTOCOL[1]:
        theirs, ours = ".".join(map(str, version)), ".".join(map(str, PROTOCOL))
        raise WorkerUnavailableError(endpoint, f"it speaks RPC protocol {theirs}, this build {ours}")
    return version


def _devices_of(endpoint: str) -> list[int]:
    base, rpc = _load()
    with _lock:
        if endpoint not in _servers:
            handshake(endpoint)
            reg = rpc.ggml_backend_rpc_add_server(endpoint.encode())
            count = base.ggml_backend_reg_dev_count(reg)
            _servers[endpoint] = [base.ggml_backend_reg_dev_get(reg, i) for i in range(count)]
        return _servers[endpoint]


def remote_devices(endpoints: list[str]) -> list[RemoteDevice]:
    """Every device of these workers, with the memory each reports now (probing each first)."""
    base, _ = _load()
    found = []
    for endpoint in endpoints:
        _reach(endpoint)
        for dev in _devices_of(endpoint):
            free, total = ctypes.c_size_t(), ctypes.c_size_t()

            def ask(d: int = dev, f: ctypes.c_size_t = free, t: ctypes.c_size_t = total) -> None:
                base.ggml_backend_dev_memory(d, ctypes.byref(f), ctypes.byref(t))

            guarded([endpoint], ask)  # a held connection to a worker that died since: see `_on_abort`
            found.append(
                RemoteDevice(
                    endpoint,
                    base.ggml_backend_dev_name(dev).decode(),
                    base.ggml_backend_dev_description(dev).decode(),
                    free.value,
                    total.value,
                )
            )
    return found


def device_list(endpoints: list[str]) -> ctypes.Array[ctypes.c_void_p] | None:
    """The NULL-terminated `devices` for a model: this machine's GPUs, then each worker's devices.

    None (llama.cpp's default: every local GPU) when the model names no worker. Probes every
    worker first, so a missing one is a WorkerUnavailableError, not an abort.
    """
    if not endpoints:
        return None
    base, _ = _load()
    local = [base.ggml_backend_dev_get(i) for i in range(base.ggml_backend_dev_count())]
    gpus = [d for d in local if base.ggml_backend_dev_type(d) in _GPU_TYPES]
    for endpoint in endpoints:
        _reach(endpoint)
    remote = [dev for endpoint in endpoints for dev in _devices_of(endpoint)]
    devices = [*gpus, *remote]
    return (ctypes.c_void_p * (len(devices) + 1))(*devices, None)


def serving_devices(names: list[str] | None = None) -> list[int]:
    """The devices `serve` offers: these ggml device names (`CPU`, `CUDA0`, ...), else every
    GPU, else the CPU. RpcUnsupportedError naming a device this build lacks."""
    base, _ = _load()
    by_name = {
        base.ggml_backend_dev_name(d).decode(): d
        for d in (base.ggml_backend_dev_get(i) for i in range(base.ggml_backend_dev_count()))
    }
    if names:
        unknown = [d for d in names if d not in by_name]
        if unknown:
            have = ", ".join(by_name)
            raise RpcUnsupportedError(f"no device {', '.join(unknown)} here; this build has {have}")
        return [by_name[d] for d in names]
    gpus = [d for d in by_name.values() if base.ggml_backend_dev_type(d) in _GPU_TYPES]
    return gpus or [d for d in by_name.values() if base.ggml_backend_dev_type(d) == 0]


def serve(host: str, port: int, *, devices: list[str] | None = None, threads: int = 0) -> None:
    """Serve this machine's devices to RPC clients until the process ends (blocks).

    `devices` are ggml device names (`CPU`, `CUDA0`, ...; None: every GPU, else the CPU).
    """
    _, rpc = _load()
    chosen = serving_devices(devices)
    array = (ctypes.c_void_p * len(chosen))(*chosen)
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("RPC worker on %s serving %d device(s)", endpoint, len(chosen))
    threads = threads or max(1, (os.cpu_count() or 2) // 2)  # rpc-server's default
    rpc.ggml_backend_rpc_start_server(endpoint.encode(), None, threads, len(chosen), array)
