"""Audio in chat on real inference: the tiny LLM with a generated audio projector (Ultravox's
layout, `make_tiny_audio_mmproj`), real libmtmd encoding and the real batching loop.

Each clip under 30 s becomes `AUDIO_TOKENS` positions in the context (libmtmd pads it to
Whisper's window); the tests count them, check the answer depends on the clip and repeats under
greedy and seeded sampling, and that the prefix caches (the slot's cells and the host prompt
cache) reuse a clip's KV only for the same clip.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine, ClaraCoreError
from claracore.protocol import openai as p
from claracore.serving.generation import render_chat
from tests.engines import runtime_of
from tests.tiny_models import AUDIO_TOKENS, NO_EOS, make_tiny_audio_mmproj, make_tiny_llama, wav_bytes

# Two clips of one second that a random encoder tells apart well: white noise and a tone (two
# noise clips give a near-constant spectrogram, and nearly the same embeddings).
CLIP_A = wav_bytes(1.0, seed=1)
CLIP_B = wav_bytes(1.0, hz=440)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("audio-models")
    llm = make_tiny_llama(folder / "tiny-audio-llm.gguf")
    return llm, make_tiny_audio_mmproj(folder / "mmproj-audio.gguf")


@pytest.fixture
async def engine(audio_files: tuple[Path, Path]) -> AsyncIterator[AsyncEngine]:
    llm, mmproj = audio_files
    base = {"model": str(llm), "mmproj": str(mmproj), "context_length": 256, "parallel": 1}
    eng = AsyncEngine(
        {
            "models": [
                {"name": "plain", **base, "prompt_cache_mb": 0},  # the one slot's own reuse only
                {"name": "cached", **base, "prompt_cache_mb": 16},  # and the host prompt cache
            ]
        }
    )
    yield eng
    await eng.close()


def asking(*clips: bytes) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "what is it"}]
    for clip in clips:
        data = base64.b64encode(clip).decode()
        parts.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
    return [{"role": "user", "content": parts}]


async def ask(engine: AsyncEngine, model: str, *clips: bytes, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "temperature": 0,
        "max_tokens": 6,
        "logit_bias": NO_EOS,
        "logprobs": True,
        "top_logprobs": 5,
        **kw,
    }
    return await engine.chat(model=model, messages=asking(*clips), **options)


def scores(reply: Any) -> list[tuple[str, float]]:
    """The first token's five best candidates and their log-probabilities."""
    top = reply.choices[0].logprobs.content[0].top_logprobs
    return [(t.token, round(t.logprob, 4)) for t in top]


def cached(reply: Any) -> int:
    return int(reply.usage.prompt_tokens_details["cached_tokens"])


async def audio_start(engine: AsyncEngine, model: str, clip: bytes) -> int:
    """Where the clip's run starts in the prompt: the text before it, which any clip may share."""
    lease = await engine.pool.acquire(model)
    try:
        rt: Any = lease.runtime
        request = p.ChatCompletionRequest.model_validate({"model": model, "messages": asking(clip)})
        text = render_chat(rt, request, lease.spec)
        _tokens, media = rt.projector.tokenize(text, [("audio", clip, "messages.0.content.1")])
        (span,) = media.spans
        assert (span.kind, span.length) == ("audio", AUDIO_TOKENS)
        return int(span.start)
    finally:
        lease.release()


async def test_the_clip_takes_its_audio_tokens_in_the_context(engine: AsyncEngine) -> None:
    """The prompt grows by exactly the clip's token run, and all of it is decoded."""
    rt = await runtime_of(engine, "plain")
    assert rt.projector.inputs == ["audio"]
    text_only = await ask(engine, "plain")
    before = rt.prompt_tokens_decoded
    one = await ask(engine, "plain", CLIP_A)
    assert one.usage.prompt_tokens == text_only.usage.prompt_tokens + AUDIO_TOKENS
    # the slot kept the text before the clip; the clip and the text after it were decoded
    assert cached(one) == await audio_start(engine, "plain", CLIP_A)
    assert rt.prompt_tokens_decoded - before == one.usage.prompt_tokens - cached(one)
    two = await ask(engine, "plain", CLIP_A, CLIP_B)
    assert two.usage.prompt_tokens == text_only.usage.prompt_tokens + 2 * AUDIO_TOKENS


async def test_the_answer_depends_on_the_clip_and_repeats(engine: AsyncEngine) -> None:
    a = await ask(engine, "plain", CLIP_A)
    b = await ask(engine, "plain", CLIP_B)
    text = await ask(engine, "plain")
    assert scores(a) != scores(b)  # the clip's embeddings reach the logits
    assert scores(a) != scores(text)
    again = await ask(engine, "plain", CLIP_A)
    assert scores(again) == scores(a)
    assert again.choices[0].message.content == a.choices[0].message.content
    seeded: dict[str, Any] = {"temperature": 0.9, "seed": 4, "max_tokens": 10}
    first = await ask(engine, "plain", CLIP_B, **seeded)
    await ask(engine, "plain", CLIP_A)  # the slot moves on to another clip in between
    second = await ask(engine, "plain", CLIP_B, **seeded)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content


async def test_two_clips_never_share_cached_state_and_one_clip_reuses_it(engine: AsyncEngine) -> None:
    """One slot and the host prompt cache: A, B, then each clip again after a text-only chat took
    the slot. B reuses only the text before its clip; each clip comes back from the cache whole,
    clip included, from its own entry though the other's tokens are alike but for the clip's
    run. Every answer scores exactly as the same request on a freshly loaded model."""
    cold = {}
    for clip in (CLIP_A, CLIP_B):
        await engine.unload("plain")  # a fresh model: nothing in its slot
        cold[clip] = scores(await ask(engine, "plain", clip))
    rt = await runtime_of(engine, "cached")
    start = await audio_start(engine, "cached", CLIP_A)
    long: dict[str, Any] = {"max_tokens": 20}  # the slot then holds enough to be worth saving
    a = await ask(engine, "cached", CLIP_A, **long)
    assert scores(a) == cold[CLIP_A]
    b = await ask(engine, "cached", CLIP_B, **long)  # A's slot is saved into the cache
    assert cached(b) == start  # the text before the clip, never A's clip
    assert scores(b) == cold[CLIP_B]
    assert rt.prompt_cache_stats().hits == 0
    for clip, first in ((CLIP_B, b), (CLIP_A, a)):
        await ask(engine, "cached", max_tokens=20)  # a text-only chat takes the slot (B is saved)
        before, hits = rt.prompt_tokens_decoded, rt.prompt_cache_stats().hits
        again = await ask(engine, "cached", clip, **long)
        assert cached(again) == again.usage.prompt_tokens - 1  # all of it, clip included
        assert rt.prompt_cache_stats().hits == hits + 1  # restored from the cache
        assert rt.prompt_tokens_decoded - before == 1
        assert scores(again) == cold[clip]
        assert again.choices[0].message.content == first.choices[0].message.content


async def test_a_clip_the_encoder_fails_on_fails_its_request_and_the_model_serves_on(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libmtmd failing to encode one request's clip fails that request with the cause, at once
    (not after retrying it every step), and the worker goes on serving the next one."""
    rt = await runtime_of(engine, "plain")
    real, calls = rt.projector.decode, []

    def fails_once(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the encoder failed")
        return real(*args, **kw)

    monkeypatch.setattr(rt.projector, "decode", fails_once)
    with pytest.raises(ClaraCoreError, match="the encoder failed"):
        await ask(engine, "plain", CLIP_A)
    assert len(calls) == 1
    again = await ask(engine, "plain", CLIP_A)
    assert again.choices[0].finish_reason == "length" and len(calls) == 2
