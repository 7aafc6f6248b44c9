"""`claracore worker`: serve this machine's devices to other ClaraCore servers over llama.cpp RPC.

The worker runs llama.cpp's RPC server from the very libraries this ClaraCore loads, so a
server and its workers built from the same release speak the same RPC protocol. It blocks in
native code, so it runs in a daemon thread while the main thread waits for Ctrl+C.

With `--mem` the native server listens on a private loopback port instead, and
runtime/rpc_relay.py's relay listens on --host/--port in front of it: llama.cpp's server reports
its devices' real memory and has no option to report less.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

from claracore.cli.common import CliError, say
from claracore.runtime.rpc_relay import MemoryCap, RpcRelay, free_loopback_port
from claracore.units import GIB

READY_TIMEOUT = 60.0  # seconds for the native server behind a relay to start listening


def cmd_worker(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C (SIGINT) or SIGTERM; a build without RPC is a one-line error."""
    from claracore.runtime import rpc
    from claracore.runtime.native import ensure_backend

    ensure_backend()
    if not rpc.supported():
        raise CliError(
            f"this llama.cpp ({rpc.lib_dir()}) was built without RPC: run "
            "`python -m claracore.native build --backend rpc` (or cuda-rpc) on this machine"
        )
    devices = [d for text in args.device or [] for d in text.split(",") if d] or None
    count = len(rpc.serving_devices(devices))  # an unknown device name fails here, in one line
    relay = None
    host, port = args.host, args.port
    if args.mem is not None:
        cap = MemoryCap(int(args.mem * GIB), count)
        host, port = "127.0.0.1", free_loopback_port()
        try:
            relay = RpcRelay(args.host, args.port, (host, port), cap)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CliError(f"cannot listen on {args.host}:{args.port}: {why}") from None
    failed: list[BaseException] = []

    def run() -> None:
        try:
            rpc.serve(host, port, devices=devices, threads=args.threads or 0)
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="claracore-rpc-worker", daemon=True)
    thread.start()
    try:
        if relay is not None:
            _start_relay(relay, f"{host}:{port}", thread)
            per = relay.cap.per_device / GIB
            say(f"Reporting at most {args.mem:g} GiB of memory ({per:.3g} GiB on each of {count} device(s)).")
        say(f"RPC worker on {args.host}:{args.port}; add it to a model's `rpc:` list. Press Ctrl+C to stop.")
        while thread.is_alive() and (relay is None or relay.alive()):
            thread.join(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        if relay is not None:
            relay.close()
    if failed:
        raise CliError(f"the RPC worker stopped: {failed[0]}")
    if relay is not None and thread.is_alive():
        raise CliError("the RPC worker's relay stopped accepting clients")
    raise CliError(f"the RPC worker stopped (is {host}:{port} already in use?)")


def _start_relay(relay: RpcRelay, private: str, server: threading.Thread) -> None:
    """Start `relay` once the native server at `private` listens and speaks this protocol."""
    from claracore.runtime import rpc

    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if not server.is_alive():
            return  # the caller reports why
        try:
            rpc.probe(private, timeout=1.0)
            break
        except rpc.WorkerUnavailableError:
            if time.monotonic() > deadline:
                raise CliError(f"llama.cpp's RPC server did not start listening on {private}") from None
            time.sleep(0.05)
    try:
        rpc.handshake(private)  # a server of another protocol version than the relay's framing
    except rpc.WorkerUnavailableError as exc:
        raise CliError(f"the RPC relay cannot serve llama.cpp's server: {exc.message}") from None
    relay.start()
