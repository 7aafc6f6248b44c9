"""CPU priority of threads: the HTTP server's event loop may yield the CPU to model compute.

Why (config `loop_nice`, off by default): on a machine whose cores are all busy with llama.cpp's
compute threads, every wake-up of the event loop (a token to stream, a request to read) preempts
one of them in the middle of a step, and its partner then waits at ggml's barrier. On 2 cores,
running only the loop's thread at nice +10 gave 3-5 % more tokens/s at 16 streaming clients, but
cost a single stream up to 10 % (probably because the loop, preempted while it holds the GIL,
holds up the decode thread's Python between steps), which is why it is a choice, not the default.

The catch: Linux gives each thread its own nice value, a new thread inherits it from the thread
that starts it, and an unprivileged process may raise it but never lower it again. So the threads
that compute must not be started by the lowered loop:
- model loads (whose thread goes on to start an LLM's decode thread and its OpenMP team) start
  from a `ThreadStarter` the pool made at its own priority;
- the work `asyncio.to_thread` hands off (embeddings, rerank, speech, file writes) runs in an
  executor whose threads were all started before the loop lowered itself.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

_NICEST = 19  # the lowest priority Linux has


class ThreadStarter:
    """Starts threads for other threads, so that each new thread gets this starter's priority.

    It is a thread of its own, made by whoever builds the starter: a thread `start`ed through it
    inherits that creator's nice value, not the caller's (see the module's docstring).
    """

    def __init__(self, name: str) -> None:
        self._requests: queue.SimpleQueue[threading.Thread | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def start(self, thread: threading.Thread) -> None:
        """Start `thread` soon, from the starter's thread. Returns at once: the thread may not be
        running yet, so hand it what it must deliver (a future) rather than wait for it here."""
        self._requests.put(thread)

    def close(self) -> None:
        """Stop the starter after the threads already handed to it have started."""
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _serve(self) -> None:
        while (thread := self._requests.get()) is not None:
            try:
                thread.start()
            except RuntimeError as exc:  # the system has no thread to give: do its work here, late
                # rather than never (a load's waiters would otherwise wait on its future forever)
                log.warning("could not start thread %s (%s): running it in the starter", thread.name, exc)
                thread.run()


def prestarted_executor(workers: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads are all running when this returns, so none is ever started
    later by (and at the priority of) whichever thread submits work. `workers` defaults to
    asyncio's own default executor's size."""
    count = workers or min(32, (os.cpu_count() or 1) + 4)
    executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="asyncio")
    # The pool starts a thread per submit while none is idle: hold each one until all exist.
    everyone = threading.Barrier(count + 1)
    for _ in range(count):
        executor.submit(everyone.wait)
    everyone.wait()
    return executor


def nice_of(native_id: int) -> int | None:
    """A thread's nice value by its native id (`threading.get_native_id()`), where threads have
    their own (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, native_id)


def lower_this_thread(steps: int) -> int | None:
    """Lower the calling thread's CPU priority by `steps` nice values (at most to 19), for good:
    unprivileged, it cannot be raised again. Returns the new nice value, or None where threads
    have no nice value of their own (on macOS the call would lower the whole process) or the
    system refused (logged)."""
    current = nice_of(threading.get_native_id())
    if current is None or steps <= 0:
        return current
    target = min(_NICEST, current + steps)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError as exc:
        log.warning("could not lower the event loop's CPU priority: %s", exc)
        return None
    return target
