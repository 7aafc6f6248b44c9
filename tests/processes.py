"""Child processes in tests: run a function in several at once, and stop a server for good."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
from collections.abc import Callable
from typing import Any


def run_in_children(target: Callable[..., None], count: int, *args: Any, timeout: float = 120) -> list[str]:
    """Call `target(*args, index, barrier, errors)` in `count` spawned processes that start
    together (each waits on `barrier`); returns the failures they put on `errors` (empty: none)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    errors = context.Queue()
    children = [context.Process(target=target, args=(*args, i, barrier, errors)) for i in range(count)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=timeout)
        assert child.exitcode == 0, f"a child did not finish (exit {child.exitcode})"
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    return failures


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Ctrl+C, then SIGKILL if it has not exited after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
