"""RPC workers that fail: the errors, and a worker lost in the middle of a request.

ggml-rpc gives each worker a connection thread; when the worker goes away (killed, its machine
rebooted) that thread finds the connection broken and calls `GGML_ABORT`. ggml lets a program
see the message before the `abort()` (`ggml_set_abort_callback`) but not prevent it, so the
callback here never returns for ggml-rpc's messages: it marks the workers that no longer accept
connections as lost, tells the runtimes that use them (`watch`) so they fail their requests
with a 503 naming the worker, and parks ggml-rpc's thread for good. What waited on that worker
(a decode step, a load) stays blocked and its memory stays allocated until the process ends;
the runtime is written off. A lost address is refused for the rest of the process (ggml-rpc
would hand the parked connection to a new model), so a worker that comes back needs a hard
restart (POST /api/server/restart/hard) to be used again.

Nothing here loads a library: rpc.py installs the callback (`catch_aborts`) when it loads
libggml-rpc, and calls the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence

from claracore.errors import ModelUnavailableError
from claracore.runtime.loading import current_watch, watching

log = logging.getLogger("claracore.runtime.rpc")

_lock = threading.Lock()
_held: dict[str, int] = {}  # endpoint -> models of this process connected to it (`hold`)
_lost: dict[str, str] = {}  # endpoint -> why: lost mid-request, refused until the process restarts
_watchers: dict[int, tuple[frozenset[str], Callable[[list[str]], None]]] = {}
_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_abort_hook: object = None  # the installed callback, kept alive for the life of the process


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


def catch_aborts(base: ctypes.CDLL) -> None:
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
    # No locks here (the aborting thread may hold rpc.py's, connecting inside `_devices_of`): each
    # read and write below is one atomic step under the GIL. The suspects: workers some model is
    # connected to or loading onto (the others have no connection that could break).
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


def refuse_lost(endpoint: str) -> None:
    """WorkerUnavailableError when `endpoint` was lost mid-request in this process."""
    if endpoint in _lost:
        raise WorkerUnavailableError(
            endpoint, "it was lost mid-request; this process cannot reconnect to it until a hard restart"
        )


def held(endpoint: str) -> bool:
    """Whether a model of this process is connected to `endpoint`."""
    return _held.get(endpoint, 0) > 0


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
