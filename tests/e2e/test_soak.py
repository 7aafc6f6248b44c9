"""A soak over real HTTP: 64 mixed requests at once (chat streams, embeddings, transcription,
speech) across five models under a memory budget that cannot hold them all, so the pool evicts
and reloads while requests wait, plus 16 streams whose clients leave early.

Proves: zero failures, the budget is never exceeded, every slot and lease is freed afterwards,
and the process's memory comes back to where it was after a warm-up round.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import io
import logging
import threading
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from claracore.config import ModelSpec
from claracore.manage.defaults import BUNDLED
from claracore.pool import loaders
from claracore.runtime.embedding import EmbeddingRuntime
from claracore.runtime.llm import LlmRuntime
from claracore.runtime.piper import PiperRuntime
from claracore.runtime.whisper import WhisperRuntime
from tests.tiny_models import NO_EOS
from tests.waiting import wait_for

log = logging.getLogger(__name__)
MIB = 2**20
GIB = 2**30
RSS_SLACK = 128 * MIB  # allocator arenas and caches vary run to run; the soak's models load ~700 MiB
RUNTIMES = (LlmRuntime, EmbeddingRuntime, WhisperRuntime, PiperRuntime)


@pytest.fixture(scope="module")
def models(tiny_llama: Path, tiny_llama_gqa: Path, tiny_bert: Path) -> list[dict[str, Any]]:
    found = {b.name: b.locate() for b in BUNDLED if b.spec["type"] in ("stt", "tts")}
    if not (found.get("joe") and found.get("whisper-tiny.en")):
        pytest.skip(
            "the Whisper and Piper model packages are not installed (./scripts/test.sh installs them)"
        )
    return [
        {"name": "chat-a", "model": str(tiny_llama), "context_length": 512, "parallel": 4},
        {"name": "chat-b", "model": str(tiny_llama_gqa), "context_length": 512, "parallel": 4},
        {"name": "embed", "model": str(tiny_bert)},
        {"name": "whisper", "model": str(found["whisper-tiny.en"]), "type": "stt"},
        {"name": "joe", "model": str(found["joe"]), "type": "tts"},
    ]


@pytest.fixture(scope="module")
def server(models: list[dict[str, Any]]) -> Iterator[tuple[str, Any, int]]:
    from tests.e2e.server import running_server

    costs = {m["name"]: loaders.recipe(ModelSpec(**m), gpu_offload=False).estimate.ram_bytes for m in models}
    # The largest model plus a few MiB: Whisper and Piper never fit together, and beside either
    # of them not all three tiny models do.
    budget = max(costs.values()) + 8 * MIB
    assert costs["whisper"] + costs["joe"] > budget
    config = {"memory": {"ram_gb": budget / GIB, "vram_gb": 0, "margin_gb": 0}, "models": models}
    with running_server(config) as (url, engine):
        yield url, engine, budget


def rss() -> int:
    """The process's resident memory after handing freed heap back to the system."""
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)
    return int(psutil.Process().memory_info().rss)


def chat_stream(url: str, model: str, max_tokens: int, leave_after: int | None = None) -> str:
    """A streamed chat; with `leave_after`, the client disconnects after that many chunks."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "tell me about the sea"}],
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 0,
        "logit_bias": NO_EOS,
    }
    chunks = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
        if r.status_code != 200:
            return f"chat {model}: {r.status_code} {r.read()[:300]!r}"
        for line in r.iter_lines():
            if line.startswith("data: {"):
                if '"error"' in line:
                    return f"chat {model}: {line[:300]}"
                chunks += 1
                if leave_after is not None and chunks >= leave_after:
                    return "ok"  # leaving the block closes the connection mid-stream
            if line == "data: [DONE]":
                return "ok" if chunks >= max_tokens else f"chat {model}: only {chunks} chunks"
    return f"chat {model}: no [DONE]"


def post(url: str, path: str, what: str, **kwargs: Any) -> str:
    r = httpx.post(url + path, timeout=120, **kwargs)
    return "ok" if r.status_code == 200 else f"{what}: {r.status_code} {r.text[:300]}"


def run(call: Callable[[], str]) -> str:
    """One request's outcome: "ok", what went wrong, or that it hung or its connection dropped."""
    try:
        return call()
    except httpx.TimeoutException as exc:
        return f"hung: {exc!r}"
    except httpx.TransportError as exc:
        return f"dropped: {exc!r}"


def requests_for(url: str, audio: bytes) -> list[Callable[[], str]]:
    """The 64 requests: 16 full chat streams, 16 left early, 12 embeddings, 10 + 10 speech."""
    calls: list[Callable[[], str]] = []
    for i in range(16):
        calls.append(lambda i=i: chat_stream(url, f"chat-{'ab'[i % 2]}", 12))
        calls.append(lambda i=i: chat_stream(url, f"chat-{'ab'[i % 2]}", 400, leave_after=3))
    for i in range(12):
        body = {"model": "embed", "input": [f"sentence {i}", "another one"]}
        calls.append(lambda body=body: post(url, "/v1/embeddings", "embed", json=body))
    for i in range(10):
        files = {"file": ("a.wav", audio, "audio/wav")}
        calls.append(
            lambda files=files: post(
                url, "/v1/audio/transcriptions", "stt", files=files, data={"model": "whisper"}
            )
        )
        body = {
            "model": "joe",
            "voice": "joe",
            "input": f"Number {i}. The sea is calm.",
            "response_format": "wav",
        }
        calls.append(lambda body=body: post(url, "/v1/audio/speech", "tts", json=body))
    assert len(calls) == 64
    return calls


def settled(engine: Any) -> bool:
    """No lease held, and no LLM (loaded, or evicted but not yet collected) has a job in a slot
    or its queue: every stream that ended, or whose client left, gave its slot back."""
    if any(s.in_flight for s in engine.pool.status()):
        return False
    runtimes = [o for o in gc.get_objects() if isinstance(o, LlmRuntime)]
    return all(runtime.active == 0 for runtime in runtimes)


def test_mixed_load_with_eviction_and_early_disconnects(server: tuple[str, Any, int]) -> None:
    url, engine, budget = server
    spoken = httpx.post(
        url + "/v1/audio/speech",
        json={"model": "joe", "voice": "joe", "input": "The sea is calm today.", "response_format": "wav"},
        timeout=120,
    )
    assert spoken.status_code == 200
    with wave.open(io.BytesIO(spoken.content)) as w:
        assert w.getnframes() > 0
    audio = spoken.content

    # Warm-up: the same 64 once, then everything unloaded; memory is measured from here, so what
    # the first round leaves (allocator arenas for 64 threads, library caches) is not a leak.
    with ThreadPoolExecutor(64) as pool:
        warm = list(pool.map(run, requests_for(url, audio)))
    assert set(warm) == {"ok"}, warm
    assert httpx.post(url + "/api/models/unload", timeout=60).status_code == 200
    wait_for(lambda: settled(engine), timeout=60, what="the warm-up to settle")
    before = rss()

    # The soak: all 64 at once, while a watcher checks the budget holds throughout.
    over_budget: list[int] = []
    evictions = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            # Loaded models hold their estimate (a load still waiting for room reserves nothing yet).
            statuses = engine.pool.status()
            held = sum(s.estimate.ram_bytes for s in statuses if s.state == "loaded" and s.estimate)
            if held > budget:
                over_budget.append(held)
            now = {s.name for s in statuses if s.state == "loaded"}
            evictions[0] += len(loaded - now)
            loaded.clear()
            loaded.update(now)
            stop.wait(0.02)

    loaded: set[str] = set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(run, requests_for(url, audio)))
    finally:
        stop.set()
        watcher.join()
    took = time.monotonic() - started
    failures = [r for r in results if r != "ok"]
    hung = sum(1 for r in failures if r.startswith(("hung", "dropped")))
    summary = (
        f"soak: {len(results)} requests (16 left early), {len(failures)} failed, {hung} hung or dropped, "
        f"{evictions[0]} evictions, {took:.1f} s"
    )
    log.warning(summary)
    assert failures == [], (summary, failures)
    held = max(over_budget, default=0) / MIB
    assert over_budget == [], f"the pool held {held:.0f} MiB of a {budget / MIB:.0f} MiB budget"
    assert evictions[0] >= 2, f"the budget was meant to force evictions ({summary})"

    # Everything freed: no lease, no slot or queue entry (the early leavers cancelled theirs).
    wait_for(lambda: settled(engine), timeout=60, what="every slot and lease to be freed")
    assert httpx.post(url + "/api/models/unload", timeout=60).status_code == 200
    wait_for(lambda: all(s.state == "unloaded" for s in engine.pool.status()), timeout=60, what="unloads")
    # No model object outlives its unload (a runtime kept alive keeps its native memory) ...
    gc.collect()
    alive = [type(o).__name__ for o in gc.get_objects() if isinstance(o, RUNTIMES)]
    assert alive == [], f"runtimes still alive after unloading everything: {alive}"
    # ... and the process is back to its size after the warm-up round.
    after = rss()
    log.warning("soak: resident memory %+.0f MiB against the warm-up", (after - before) / MIB)
    assert after - before < RSS_SLACK, f"{(after - before) / MIB:.0f} MiB more than after the warm-up"
    # And the server still answers.
    assert chat_stream(url, "chat-a", 4) == "ok"
