"""llama.cpp's RPC backend from Python: remote devices for a model, and the worker that serves them.

llama.cpp splits a model's offloaded layers over the devices in `llama_model_params.devices`;
its RPC backend makes a device of each `rpc-server` worker over TCP. llama-cpp-python binds
neither, so this module calls `ggml_backend_rpc_*` through ctypes in the very libraries
llama-cpp-python loaded (a build with `GGML_RPC`, e.g. the `rpc` preset). Both ends must come
from the same llama.cpp, which `claracore worker` guarantees by serving from these libraries too.

ggml-rpc aborts the whole process when it cannot reach a server, so every endpoint is probed
with a plain TCP connect first, and a worker that is gone becomes a `WorkerUnavailableError`
naming it instead of a crash. A worker lost in the middle of a request is rpc_loss.py's part.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from claracore.errors import InsufficientMemoryError
from claracore.runtime.rpc_loss import (
    RpcUnsupportedError,
    WorkerUnavailableError,
    catch_aborts,
    guarded,
    held,
    refuse_lost,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds for the TCP probe of a worker
#: RPC_PROTO_MAJOR/MINOR_VERSION of ggml-rpc.h in the llama.cpp that llama-cpp-python 0.3.x vendors.
PROTOCOL = (7, 0)
_HELLO = 14  # RPC_CMD_HELLO
_CAPS = 24  # RPC_CONN_CAPS_SIZE: the HELLO request's body, zeros (no RDMA)


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
    catch_aborts(_libs[0])
    return _libs


def _reach(endpoint: str) -> None:
    """WorkerUnavailableError unless `endpoint` can be used: not lost, and answering.

    A worker serves one client at a time, with a backlog of one: while a model of this process
    holds its connection, a TCP probe would only queue behind it (and the next one time out).
    That connection, which ggml-rpc shares with every new model, is proof enough.
    """
    refuse_lost(endpoint)
    if not held(endpoint):
        probe(endpoint)


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
