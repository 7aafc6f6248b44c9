"""Speculative decoding by n-gram lookup: the same answers as without it, however requests mix.

Two models share one tiny GGUF, one with `speculative: ngram`. Greedy random-weight models fall
into loops that n-gram lookup predicts, so drafts are both accepted and rejected here; every
test checks the drafts were really used (a speculating runtime that never drafted would pass the
equality checks trivially) and compares every answer with the plain model's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from claracore import AsyncEngine
from claracore.errors import ClaraCoreError
from claracore.runtime.speculative import NgramIndex
from tests.engines import runtime_of
from tests.tiny_models import NO_EOS, make_tiny_llama

PROMPTS = ["hello world", "the cat is red and the dog is blue", "yes no yes no ok", "sun sea sun"]


@pytest.fixture
async def engine(tiny_llama_4k: Path, model_dir: Path, tiny_bert: Path) -> Any:
    base = {"model": str(tiny_llama_4k), "context_length": 512, "parallel": 3}
    # the target's own weights in another file: its greedy guesses are right, sampling misses some
    drafter = make_tiny_llama(model_dir / "tiny-drafter.gguf", n_ctx=4096)
    eng = AsyncEngine(
        {
            "models": [
                {"name": "plain", **base},
                {"name": "spec", **base, "speculative": "ngram", "draft_max": 6},
                {"name": "drafted", **base, "draft_model": str(drafter), "draft_max": 4},
                {"name": "misdrafted", **base, "draft_model": str(tiny_bert)},
            ]
        }
    )
    yield eng
    await eng.close()


async def ask(engine: AsyncEngine, model: str, text: str, **kw: Any) -> Any:
    options: dict[str, Any] = {"temperature": 0, "max_tokens": 80, "logit_bias": NO_EOS, **kw}
    return await engine.chat(model=model, messages=[{"role": "user", "content": text}], **options)


def answer(reply: Any) -> list[tuple[str | None, str | None, int]]:
    return [(c.message.content, c.finish_reason, reply.usage.completion_tokens) for c in reply.choices]


async def test_greedy_answers_are_identical_and_drafts_are_accepted_and_rejected(engine: AsyncEngine) -> None:
    spec = await runtime_of(engine, "spec")
    for text in PROMPTS:
        assert answer(await ask(engine, "spec", text)) == answer(await ask(engine, "plain", text)), text
    assert spec.accepted_tokens > 40, "n-gram lookup should predict the loops of a greedy tiny model"
    # sampling breaks the loops: drafts get rejected, and the answers still agree
    for text in PROMPTS:
        kw = {"temperature": 1.5, "seed": 3}
        assert answer(await ask(engine, "spec", text, **kw)) == answer(await ask(engine, "plain", text, **kw))
    assert spec.drafted_tokens > spec.accepted_tokens + 50, "sampled answers should reject drafts"
    # usage says how many drafted tokens each answer kept, as OpenAI reports predicted outputs
    reply = await ask(engine, "spec", PROMPTS[0])
    details = reply.usage.completion_tokens_details
    assert details["accepted_prediction_tokens"] > 20 and details["rejected_prediction_tokens"] >= 0
    assert details["accepted_prediction_tokens"] < reply.usage.completion_tokens
    plain = await runtime_of(engine, "plain")
    assert plain.drafted_tokens == 0
    assert (await ask(engine, "plain", PROMPTS[0])).usage.completion_tokens_details is None


async def test_concurrent_streams_seeds_and_n_match_the_plain_model(engine: AsyncEngine) -> None:
    """Three requests decoding together (drafts from several slots in one batch), seeded sampling
    with two choices, logprobs: all as the plain model answers them one by one."""
    spec = await runtime_of(engine, "spec")
    kinds: list[dict[str, Any]] = [
        {},
        {"temperature": 0.9, "seed": 11, "n": 2},
        {"logprobs": True, "top_logprobs": 2, "max_tokens": 40},
    ]
    together = await asyncio.gather(
        *(ask(engine, "spec", t, **k) for t, k in zip(PROMPTS, kinds, strict=False))
    )
    for text, kw, got in zip(PROMPTS, kinds, together, strict=False):
        want = await ask(engine, "plain", text, **kw)
        assert answer(got) == answer(want), (text, kw)
        if kw.get("logprobs"):
            mine = [(t.token, round(t.logprob, 3)) for t in got.choices[0].logprobs.content]
            theirs = [(t.token, round(t.logprob, 3)) for t in want.choices[0].logprobs.content]
            assert mine == theirs
    assert spec.accepted_tokens > 0


async def test_stops_and_limits_end_where_the_plain_model_ends(engine: AsyncEngine) -> None:
    """A stop string, max_tokens and the end of the context can fall inside an accepted draft."""
    spec = await runtime_of(engine, "spec")
    full = (await ask(engine, "plain", PROMPTS[2])).choices[0].message.content
    stop = full.split()[6]  # a word from the middle of a looping answer
    for kw in ({"stop": [stop]}, {"max_tokens": 13}, {"max_tokens": 1}, {"max_tokens": 2000}):
        assert answer(await ask(engine, "spec", PROMPTS[2], **kw)) == answer(
            await ask(engine, "plain", PROMPTS[2], **kw)
        ), kw
    assert spec.accepted_tokens > 0


async def test_rejected_drafts_leave_the_cache_so_a_follow_up_turn_reuses_it_correctly(
    engine: AsyncEngine,
) -> None:
    """The next turn reuses the slot's cached prefix: a rejected draft left in the KV cache (or
    in the slot's token list) would change its answer."""
    spec = await runtime_of(engine, "spec")
    first = await ask(engine, "spec", PROMPTS[1], temperature=1.5, seed=3)
    assert spec.drafted_tokens > spec.accepted_tokens + 10, "drafts should have been rejected"
    follow = [
        {"role": "user", "content": PROMPTS[1]},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "red dog"},
    ]
    options: dict[str, Any] = {"temperature": 0, "max_tokens": 40, "logit_bias": NO_EOS}
    again = await engine.chat(model="spec", messages=follow, **options)
    assert again.usage.prompt_tokens_details["cached_tokens"] > first.usage.prompt_tokens // 2
    plain = await engine.chat(model="plain", messages=follow, **options)
    assert again.choices[0].message.content == plain.choices[0].message.content


def test_ngram_lookup_drafts_what_followed_the_tail_before() -> None:
    index = NgramIndex(job=None)  # type: ignore[arg-type]
    tokens = [5, 6, 7, 8, 9, 10, 1, 2, 6, 7, 8]
    assert index.draft(tokens, 3) == [9, 10, 1]  # "6 7 8" was followed by 9 10 1
    assert index.draft(tokens, 10) == [9, 10, 1, 2, 6, 7, 8]  # never past what exists
    assert index.draft([*tokens, 3], 4) == []  # "7 8 3", "8 3" never seen
    # the latest occurrence wins, and the index grows with the sequence
    grown = [*tokens, 9, 4, 4, 6, 7, 8]
    assert index.draft(grown, 2) == [9, 4]


async def test_a_draft_model_drafts_for_every_slot_and_changes_no_answer(engine: AsyncEngine) -> None:
    drafted = await runtime_of(engine, "drafted")
    kinds: list[dict[str, Any]] = [
        {},
        {"temperature": 1.5, "seed": 3},
        {"temperature": 0.9, "seed": 11, "n": 2},
    ]
    together = await asyncio.gather(
        *(ask(engine, "drafted", t, **k) for t, k in zip(PROMPTS, kinds, strict=False))
    )
    for text, kw, got in zip(PROMPTS, kinds, together, strict=False):
        assert answer(got) == answer(await ask(engine, "plain", text, **kw)), (text, kw)
    assert drafted.accepted_tokens > 40, "the draft model should guess the greedy answer"
    assert drafted.drafted_tokens > drafted.accepted_tokens + 10, "and miss some of the sampled tokens"
    listed = {m.id: m.model_dump() for m in engine.models().data}
    assert (listed["drafted"]["speculative"], listed["spec"]["speculative"]) == ("draft", "ngram")


async def test_a_draft_model_with_another_vocabulary_fails_the_load_naming_both(engine: AsyncEngine) -> None:
    with pytest.raises(ClaraCoreError) as err:
        await ask(engine, "misdrafted", "hello")
    message = str(err.value)
    assert "tiny-bert" in message and "tiny-llama-4k" in message, message
    assert answer(await ask(engine, "plain", "hello"))  # the others keep serving
