"""`claracore worker`: serve this machine's devices to other ClaraCore servers over llama.cpp RPC.

The worker runs llama.cpp's RPC server from the very libraries this ClaraCore loads, so a
server and its workers built from the same release speak the same RPC protocol version. It
blocks in native code, so it runs in a daemon thread while the main thread waits for Ctrl+C.
"""

from __future__ import annotations

import argparse
import threading

from claracore.cli.common import CliError, say


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
    devices = [d for text in args.device or [] for d in text.split(",") if d]
    failed: list[BaseException] = []

    def run() -> None:
        try:
            rpc.serve(args.host, args.port, devices=devices or None, threads=args.threads or 0)
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="claracore-rpc-worker", daemon=True)
    thread.start()
    say(f"RPC worker on {args.host}:{args.port}; add it to a model's `rpc:` list. Press Ctrl+C to stop.")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        return 0
    if failed:
        raise CliError(f"the RPC worker stopped: {failed[0]}")
    raise CliError(f"the RPC worker stopped (is {args.host}:{args.port} already in use?)")
