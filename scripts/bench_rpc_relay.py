#!/usr/bin/env python3
"""What the relay of `claracore worker --mem` costs: SET_TENSOR throughput and per-message latency.

    PYTHONPATH=. python scripts/bench_rpc_relay.py [--gib 2] [--chunk-mib 64] [--round-trips 5000]

A sink speaking ggml-rpc's framing (it drains SET_TENSOR payloads and answers GET_ALIGNMENT, as
llama.cpp's RPC server would) runs in its own process; the relay (claracore/runtime/rpc_relay.py)
runs in another, as it does in a worker; this process is the client. Each figure is measured
straight to the sink and through the relay: MB/s of `--gib` GiB sent as SET_TENSOR messages of
`--chunk-mib` MiB (the time until a round trip after the last one comes back), and the median
and 99th percentile of `--round-trips` GET_ALIGNMENT round trips. The difference of the two is
what the relay adds. The sink is Python, not llama.cpp, so it is only a floor for the real server.
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from claracore.runtime.rpc_relay import ANSWERED, MemoryCap, RpcRelay

REQUEST = struct.Struct("<BQ")
SET_TENSOR, GET_ALIGNMENT = 6, 1
MIB = 1 << 20


def sink(port_file: Path) -> None:
    """Serve one connection after another: drain payloads, answer what must be answered (8 bytes)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port_file.write_text(str(listener.getsockname()[1]))
    buf = memoryview(bytearray(8 * MIB))
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            while True:
                head = _exact(sock, REQUEST.size, buf)
                if head is None:
                    break
                cmd, size = REQUEST.unpack(head)
                left = size
                while left:
                    n = sock.recv_into(buf[: min(left, len(buf))])
                    if not n:
                        break
                    left -= n
                if cmd in ANSWERED:
                    sock.sendall(struct.pack("<QQ", 8, 64))


def _exact(sock: socket.socket, size: int, buf: memoryview) -> bytes | None:
    got = 0
    while got < size:
        n = sock.recv_into(buf[got:size])
        if not n:
            return None
        got += n
    return bytes(buf[:size])


def relay(upstream_port: int, port_file: Path) -> None:
    r = RpcRelay("127.0.0.1", 0, ("127.0.0.1", upstream_port), MemoryCap(1 << 30, 1))
    port_file.write_text(str(r.address[1]))
    r.start()
    while r.alive():
        time.sleep(1)


def _start(argv: list[str], port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, *argv, "--port-file", str(port_file)])
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{argv[0]} did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def round_trip(sock: socket.socket) -> None:
    sock.sendall(REQUEST.pack(GET_ALIGNMENT, 4) + bytes(4))
    got = 0
    while got < 16:
        n = len(sock.recv(16 - got))
        if not n:
            raise ConnectionError("closed")
        got += n


def measure(port: int, total: int, chunk: int, trips: int) -> tuple[float, float, float]:
    """(MB/s, median µs, p99 µs) of one client connection to 127.0.0.1:port."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sock:
        for _ in range(200):  # warm-up
            round_trip(sock)
        times = []
        for _ in range(trips):
            started = time.perf_counter()
            round_trip(sock)
            times.append(time.perf_counter() - started)
        times.sort()
        payload = memoryview(bytes(chunk))
        started = time.perf_counter()
        sent = 0
        while sent < total:
            sock.sendall(REQUEST.pack(SET_TENSOR, chunk))
            sock.sendall(payload)
            sent += chunk
        round_trip(sock)  # the sink has drained everything before it answers this
        seconds = time.perf_counter() - started
    return sent / seconds / 1e6, times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=2.0, help="GiB of SET_TENSOR payload per run")
    ap.add_argument("--chunk-mib", type=int, default=64, help="MiB per SET_TENSOR message")
    ap.add_argument("--round-trips", type=int, default=5000, help="GET_ALIGNMENT round trips per run")
    ap.add_argument("--role", choices=["sink", "relay"], help=argparse.SUPPRESS)
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "sink":
        sink(args.port_file)
        return 0
    if args.role == "relay":
        relay(args.upstream, args.port_file)
        return 0
    tmp = Path(f"/tmp/bench_rpc_relay.{time.monotonic_ns()}")
    sink_proc, sink_port = _start(["--role", "sink"], tmp.with_suffix(".sink"))
    relay_proc, relay_port = _start(
        ["--role", "relay", "--upstream", str(sink_port)], tmp.with_suffix(".relay")
    )
    try:
        total, chunk = int(args.gib * (1 << 30)), args.chunk_mib * MIB
        total -= total % chunk
        direct = measure(sink_port, total, chunk, args.round_trips)
        relayed = measure(relay_port, total, chunk, args.round_trips)
    finally:
        for proc in (relay_proc, sink_proc):
            proc.terminate()
            proc.wait(10)
        for suffix in (".sink", ".relay"):
            tmp.with_suffix(suffix).unlink(missing_ok=True)
    print(f"SET_TENSOR, {total / (1 << 30):g} GiB in {args.chunk_mib} MiB messages:")
    print(f"  direct {direct[0]:8.0f} MB/s   through the relay {relayed[0]:8.0f} MB/s")
    print(f"GET_ALIGNMENT round trip, {args.round_trips} of them (median / p99):")
    d, r = direct, relayed
    print(f"  direct {d[1]:6.0f} / {d[2]:6.0f} µs   through the relay {r[1]:6.0f} / {r[2]:6.0f} µs")
    print(f"  the relay adds {relayed[1] - direct[1]:.0f} µs per answered message (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
