"""kill -9 during `fsutil.atomic_write`, many times: the file is always one whole version, old or
new, never empty or torn. The writes are large (1 MiB), so a writer that is not atomic spends most
of its time with a torn file on disk and a kill at a random moment finds it; the HTTP crash test
(tests/e2e/test_crash.py) kills the whole server only a few times."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLS = 12
SIZE = 1 << 20
# The child writes versions 1, 2, 3, ... of the file, each SIZE bytes of its version's letter,
# and says "started" once the first write is done.
CHILD = f"""
import sys
from claracore.fsutil import atomic_write
path = sys.argv[1]
version = 0
while True:
    version += 1
    atomic_write(path, bytes([65 + version % 26]) * {SIZE})
    if version == 1:
        print("started", flush=True)
"""


def test_a_kill_mid_write_leaves_one_whole_version(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    chance = random.Random(7)
    for _ in range(KILLS):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        ) as child:
            try:
                assert child.stdout is not None and child.stdout.readline() == b"started\n"
                threading.Event().wait(chance.uniform(0.0, 0.2))  # the child writes back to back
                assert child.poll() is None
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(30)
        data = target.read_bytes()
        assert len(data) == SIZE and data == data[:1] * SIZE, (len(data), data[:1], data[-1:])
