"""Speculative decoding by n-gram lookup, against the same server without it and llama-server.

    python scripts/bench_speculative.py [--model PATH] [--threads N] [--repeat 3] [--draft-max 8]
                                        [--llama-server PATH/TO/llama-server]

The task is a rewrite: the prompt holds a text of about 300 tokens and asks for it back with one
word changed, so the answer mostly repeats the prompt, which n-gram lookup drafts from. A second
task is ordinary chat (128 tokens, end of generation banned), where lookup finds little: it shows
what speculation costs when it does not pay.

Each side runs in its own server process, one at a time, on the same GGUF with the same thread
count and one slot (single stream), greedy:

- claracore, plain, and with `speculative: ngram` (`draft_max` from --draft-max);
- llama-server, plain, and with `--spec-type ngram-simple` (lookup n-gram of 3, drafts of up to
  --draft-max tokens), when --llama-server is given.

Each request is sent once to warm up (its prompt is then cached on every side), then --repeat
times; the median run counts. Prints tokens/s (completion tokens over the request's wall time),
the accepted-draft rate (claracore's usage.completion_tokens_details, llama-server's timings),
whether claracore's greedy answers agree with and without speculation, and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import PROMPTS, default_model, eog_bias  # noqa: E402
from bench_server import free_port, stop, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

TEXT = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips after "
    "decades of salt wind. Every evening the keeper climbed the spiral stairs, one hundred and twelve "
    "of them, to light the great lamp. Ships passing in the night would see the beam sweep across the "
    "water and know that the rocks were near. The keeper kept a logbook of every vessel, every storm, "
    "and every quiet night when nothing moved but the waves. In winter the wind howled through the "
    "cracks in the windows, and ice formed on the railings of the gallery. In summer, children from "
    "the village would walk up the path to ask for stories about shipwrecks and smugglers. The keeper "
    "always told them the same tale, about a schooner that ran aground in a fog so thick the lamp "
    "could not pierce it. Nobody was lost that night, because the keeper rowed out in a small boat "
    "and guided the sailors to the shore one by one. Years later, when the lamp was replaced by an "
    "automatic light, the keeper moved to a cottage in the village, but still walked to the cliff "
    "every evening to watch the beam turn, counting the seconds between each flash as he always had."
)
REWRITE = (
    f"Here is a text:\n\n{TEXT}\n\nWrite the whole text again exactly as it is, word for word, "
    "except that the word 'keeper' becomes 'guardian'. Output only the text."
)


@dataclass
class Result:
    """One task on one side: the median run's tokens/s, and the drafts over all runs."""

    tps: float = 0.0
    tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    texts: list[str] = field(default_factory=list)

    @property
    def acceptance(self) -> str:
        return f"{self.accepted / self.drafted:5.1%}" if self.drafted else "    -"


def command(side: str, args: argparse.Namespace, path: str, port: int, tmp: Path) -> list[str]:
    if side.startswith("claracore"):
        spec: dict[str, Any] = {
            "name": "m",
            "model": path,
            "threads": args.threads,
            "context_length": 2048,
            "parallel": 1,
        }
        if side.endswith("ngram"):
            spec.update(speculative="ngram", draft_max=args.draft_max)
        cfg = tmp / "config.yaml"
        cfg.write_text(yaml.safe_dump({"models": [spec]}, sort_keys=False))
        return [sys.executable, "-m", "claracore", "serve", "--config", str(cfg), "--port", str(port)]
    cmd = [
        args.llama_server, "-m", path, "-t", str(args.threads), "-c", "2048", "-np", "1",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if side.endswith("ngram"):
        cmd += [
            "--spec-type", "ngram-simple",
            "--spec-ngram-simple-size-n", "3",
            "--spec-ngram-simple-size-m", str(args.draft_max),
            "--spec-draft-n-max", str(args.draft_max),
        ]  # fmt: skip
    return cmd


@contextlib.contextmanager
def serve(side: str, args: argparse.Namespace, path: str) -> Iterator[tuple[str, str]]:
    """(base URL, model id) of a freshly started server, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as d:
        tmp, port = Path(d), free_port()
        log = tmp / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command(side, args, path, port, tmp), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                env={**os.environ, "CLARACORE_HOME": str(tmp)},
            )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}/v1"
            yield base, wait_ready(proc, base, log)
        finally:
            stop(proc)


def run_task(base: str, model: str, body: dict[str, Any], repeat: int) -> Result:
    out = Result()
    runs: list[tuple[float, int]] = []
    with httpx.Client(timeout=600) as client:
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            r = client.post(f"{base}/chat/completions", json={"model": model, **body})
            seconds = time.perf_counter() - t0
            r.raise_for_status()
            reply = r.json()
            if i == 0:
                continue  # the warm-up: loads the model and caches the prompt
            tokens = reply["usage"]["completion_tokens"]
            runs.append((tokens / seconds, tokens))
            out.texts.append(reply["choices"][0]["message"]["content"] or "")
            details = reply["usage"].get("completion_tokens_details") or {}
            timings = reply.get("timings") or {}  # llama-server's
            if "accepted_prediction_tokens" in details:
                out.accepted += details["accepted_prediction_tokens"]
                out.drafted += details["accepted_prediction_tokens"] + details["rejected_prediction_tokens"]
            elif "draft_n" in timings:
                out.accepted += timings.get("draft_n_accepted", 0)
                out.drafted += timings["draft_n"]
    out.tps, out.tokens = sorted(runs)[len(runs) // 2]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="GGUF file (default: the bundled SmolLM2)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--draft-max", type=int, default=8)
    ap.add_argument("--llama-server", default=None, help="path to llama.cpp's llama-server binary")
    args = ap.parse_args()
    path = args.model or default_model()
    bias = {str(t): v for t, v in eog_bias(path).items()}
    tasks = {
        "rewrite": {"messages": [{"role": "user", "content": REWRITE}], "max_tokens": 400, "temperature": 0},
        "chat": {
            "messages": [{"role": "user", "content": PROMPTS[0]}],
            "max_tokens": 128,
            "temperature": 0,
            "logit_bias": bias,
        },
    }
    sides = ["claracore", "claracore ngram"]
    if args.llama_server:
        sides += ["llama-server", "llama-server ngram"]
    results: dict[tuple[str, str], Result] = {}
    for side in sides:
        with serve(side, args, path) as (base, model):
            for task, body in tasks.items():
                results[side, task] = got = run_task(base, model, body, args.repeat)
                print(
                    f"{side:<20} {task:<8} {got.tps:7.1f} tok/s  {got.tokens:4d} tokens  "
                    f"accepted drafts {got.acceptance}",
                    flush=True,
                )
    print()
    for task in tasks:
        same = results["claracore", task].texts == results["claracore ngram", task].texts
        print(f"{task}: claracore's greedy answers with and without lookup agree: {'yes' if same else 'NO'}")
    plain, spec = results["claracore", "rewrite"].tps, results["claracore ngram", "rewrite"].tps
    chat_ratio = results["claracore ngram", "chat"].tps / results["claracore", "chat"].tps
    print(f"  rewrite, ngram vs plain:   {spec / plain:5.2f}x  (target >= 1.50x)")
    print(f"  chat, ngram vs plain:      {chat_ratio:5.2f}x  (target >= 0.95x: no loss)")
    if args.llama_server:
        peer = results["llama-server ngram", "rewrite"].tps
        print(f"  rewrite, ngram vs llama-server ngram: {spec / peer:5.2f}x")
        print(
            f"  rewrite, ngram vs llama-server plain: {spec / results['llama-server', 'rewrite'].tps:5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
