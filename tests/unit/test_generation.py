"""Chat and completions through the engine on tiny random models: shapes, options, bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from claracore import (
    AsyncEngine,
    ClaraCoreError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from claracore.runtime.jobs import scan_stops
from claracore.runtime.sampling import SamplingParams, build_chain
from tests.tiny_models import NO_EOS
from tests.waiting import wait_until

USER = [{"role": "user", "content": "hello world"}]


@pytest.fixture
async def engine(tiny_llama: Path) -> Any:
    eng = AsyncEngine(
        {
            "models": [
                {
                    "name": "tiny",
                    "model": str(tiny_llama),
                    "context_length": 256,
                    "parallel": 4,
                    "aliases": ["t"],
                },
            ]
        }
    )
    yield eng
    await eng.close()


async def greedy_text(engine: AsyncEngine, max_tokens: int = 24, **kw: Any) -> str:
    r = await engine.chat(model="tiny", messages=USER, temperature=0, max_tokens=max_tokens, **kw)
    return r.choices[0].message.content or ""


async def test_chat_answers_in_openai_shape(engine: AsyncEngine) -> None:
    r = await engine.chat(model="t", messages=USER, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "t"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8
    assert r.usage.prompt_tokens > 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8


async def test_stream_has_role_first_one_id_and_usage_last(engine: AsyncEngine) -> None:
    stream = await engine.chat(
        model="tiny",
        messages=USER,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == await greedy_text(engine, max_tokens=6)


def test_scan_stops_holds_back_partial_matches() -> None:
    assert scan_stops("hello wor", ("world",)) == (-1, 3)
    assert scan_stops("hello world!", ("world",)) == (6, 0)
    assert scan_stops("abc", ()) == (-1, 0)
    assert scan_stops("xx<|e", ("<|end|>", "zzz")) == (-1, 3)
    # Of several stop strings the earliest match wins, whatever their order (one at 0 too).
    assert scan_stops("ab", ("a", "b")) == scan_stops("ab", ("b", "a")) == (0, 0)
    assert scan_stops("xab", ("b", "a")) == (1, 0)


@pytest.mark.parametrize("stop", ["ab", "world", "<|end|>", "\n\nUser:", "aaa"])
def test_scan_stops_holds_every_proper_prefix_and_nothing_more(stop: str) -> None:
    """Text ending in any proper prefix of a stop string holds exactly that prefix back (the
    longest, when several match), so no part of a stop string is ever sent before it completes."""
    for k in range(1, len(stop)):
        text = "xyz " + stop[:k]
        longest = max(j for j in range(1, len(stop)) if text.endswith(stop[:j]))
        assert scan_stops(text, (stop,)) == (-1, longest), (text, stop)
        assert scan_stops(text, ("qqqq", stop)) == (-1, longest)
    assert scan_stops("xyz " + stop, (stop,)) == (4, 0)
    assert scan_stops("xyz " + stop + " more " + stop, (stop,)) == (4, 0)  # the first one
    assert scan_stops("xyz q", (stop,)) == (-1, 0)
    assert scan_stops("", (stop,)) == (-1, 0)


async def test_stop_string_across_token_boundaries(engine: AsyncEngine) -> None:
    full = await greedy_text(engine, max_tokens=40)
    # A stop string that starts inside one token and ends inside a later one.
    start = len(full) // 2
    stop = full[start + 1 : start + 6]
    assert len(stop) == 5
    cut = full[: full.index(stop)]
    assert await greedy_text(engine, max_tokens=40, stop=[stop]) == cut
    stream = await engine.chat(
        model="tiny", messages=USER, temperature=0, max_tokens=40, stop=stop, stream=True
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == cut
    assert all(stop not in piece for piece in pieces)


async def test_completions_end_at_a_stop_string_too(engine: AsyncEngine) -> None:
    """The legacy endpoint reads `stop` as chat does: the text ends before it, reason "stop"."""
    kw: dict[str, Any] = {"model": "tiny", "prompt": "the cat", "max_tokens": 30, "temperature": 0}
    full = (await engine.complete(**kw, logit_bias=NO_EOS)).choices[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert len(stop) == 3
    r = await engine.complete(**kw, logit_bias=NO_EOS, stop=[stop])
    assert r.choices[0].text == full[: full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


async def test_no_part_of_a_stop_string_leaks_wherever_it_falls(engine: AsyncEngine) -> None:
    """Stop strings of 2 to 6 characters starting at every 3rd character of the greedy text:
    streamed and whole, the answer is exactly the text before the stop's first occurrence."""
    full = await greedy_text(engine, max_tokens=40, logit_bias=NO_EOS)
    tried = 0
    for start in range(1, len(full) - 6, 3):
        for length in (2, 4, 6):
            stop = full[start : start + length]
            if not stop.strip():
                continue
            cut = full[: full.index(stop)]
            stream = await engine.chat(
                model="tiny", messages=USER, temperature=0, max_tokens=40, stop=[stop],
                logit_bias=NO_EOS, stream=True,
            )  # fmt: skip
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert streamed == cut, (stop, streamed, cut)
            tried += 1
    assert tried > 20


async def test_same_seed_same_text_and_n_choices_differ(engine: AsyncEngine) -> None:
    kw: dict[str, Any] = {"model": "tiny", "messages": USER, "temperature": 1.0, "max_tokens": 16, "seed": 42}
    a = await engine.chat(**kw, n=3)
    b = await engine.chat(**kw, n=3)
    texts = [c.message.content for c in a.choices]
    assert texts == [c.message.content for c in b.choices]
    assert len(set(texts)) > 1  # each choice samples with its own seed
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert a.usage.completion_tokens == 48


async def test_logprobs_with_top_logprobs(engine: AsyncEngine) -> None:
    r = await engine.chat(
        model="tiny", messages=USER, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 5
    for item in content:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob >= item.top_logprobs[1].logprob >= item.top_logprobs[2].logprob
        assert item.top_logprobs[0].token == item.token  # greedy takes the most likely token
        assert item.logprob == pytest.approx(item.top_logprobs[0].logprob)
    assert "".join(i.token for i in content) == r.choices[0].message.content


async def test_logit_bias_forces_a_token(engine: AsyncEngine) -> None:
    lease = await engine.pool.acquire("tiny")
    try:
        rt: Any = lease.runtime
        cat_id = next(t for t in range(rt.n_vocab) if rt.piece(t) == b" cat")
    finally:
        lease.release()
    r = await engine.chat(
        model="tiny", messages=USER, max_tokens=4, logit_bias={str(cat_id): 100}, temperature=1
    )
    assert r.choices[0].message.content == " cat" * 4


async def test_sampler_refusals_name_the_field_and_the_range(engine: AsyncEngine) -> None:
    """What build_chain refuses: a token past the vocabulary (the message gives the valid ids) and
    a grammar llama.cpp cannot parse (only a bug in the JSON-schema converter gets one there)."""
    lease = await engine.pool.acquire("tiny")
    try:
        rt: Any = lease.runtime
        with pytest.raises(InvalidRequestError) as bias:
            build_chain(SamplingParams(logit_bias={rt.n_vocab: 1.0}), rt.vocab, rt.n_vocab)
        with pytest.raises(InvalidRequestError) as grammar:
            build_chain(SamplingParams(grammar="root ::= ("), rt.vocab, rt.n_vocab)
    finally:
        lease.release()
    assert bias.value.param == "logit_bias" and f"(0..{rt.n_vocab - 1})" in bias.value.message
    assert grammar.value.param == "response_format"


async def test_json_object_output_parses(engine: AsyncEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"enum": [1, 2, 3]}},
        "required": ["ok", "n"],
        "additionalProperties": False,
    }
    r = await engine.chat(
        model="tiny",
        messages=USER,
        max_tokens=40,
        temperature=0.7,
        seed=1,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    value = json.loads(r.choices[0].message.content or "")
    assert isinstance(value["ok"], bool) and value["n"] in (1, 2, 3)


async def test_text_held_for_a_stop_string_is_sent_when_the_model_ends(engine: AsyncEngine) -> None:
    """The schema allows only `"ab"`, after which the grammar lets the model end and nothing else.
    The closing quote could begin the stop string, so it is held back; the end must release it."""
    only = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["ab"]}}}
    r = await engine.chat(
        model="tiny", messages=USER, max_tokens=20, temperature=0, response_format=only, stop=['"never']
    )
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ('"ab"', "stop")


async def test_completions_with_list_prompt_and_echo(engine: AsyncEngine) -> None:
    r = await engine.complete(
        model="tiny", prompt=["the cat", "a dog"], max_tokens=3, temperature=0, echo=True
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text.startswith("the cat") and r.choices[1].text.startswith("a dog")
    assert r.object == "text_completion"
    stream = await engine.complete(model="tiny", prompt="the cat", max_tokens=3, temperature=0, stream=True)
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    single = await engine.complete(model="tiny", prompt="the cat", max_tokens=3, temperature=0)
    assert text == single.choices[0].text


async def test_echo_with_logprobs_scores_every_prompt_token(engine: AsyncEngine, tiny_llama: Path) -> None:
    """What evaluation harnesses use: each prompt token's log-probability given the ones before.

    Checked against llama-cpp-python's own full-logits evaluation of the same prompt, while other
    requests share the batch (each decode may carry only `parallel` logits rows).
    """
    import asyncio

    import llama_cpp
    import numpy as np

    prompt = "the quick brown fox jumps over the lazy dog " * 3
    busy = [
        engine.chat(model="tiny", messages=USER, max_tokens=20, temperature=0),
        engine.complete(model="tiny", prompt="a dog", max_tokens=20, temperature=0),
    ]
    scored, *_ = await asyncio.gather(
        engine.complete(model="tiny", prompt=prompt, echo=True, logprobs=2, max_tokens=2, temperature=0),
        *busy,
    )
    lp = scored.choices[0].logprobs
    n_prompt = scored.usage.prompt_tokens
    assert len(lp.tokens) == n_prompt + 2 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.text_offset[0] == 0 and lp.text_offset[n_prompt] == len(prompt)
    assert all(len(top) == 2 for top in lp.top_logprobs[1:])

    ref = llama_cpp.Llama(str(tiny_llama), n_ctx=256, logits_all=True, verbose=False)
    ids = ref.tokenize(prompt.encode())
    ref.eval(ids)
    logits = np.asarray(ref.scores[: len(ids)], dtype=np.float64)
    logz = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    expected = [logits[i, ids[i + 1]] - logz[i] for i in range(len(ids) - 1)]
    ref.close()
    assert len(ids) == n_prompt
    assert lp.token_logprobs[1:n_prompt] == pytest.approx(expected, abs=0.02)

    again = await engine.complete(
        model="tiny", prompt=prompt, echo=True, logprobs=0, max_tokens=1, temperature=0
    )
    assert again.choices[0].logprobs.token_logprobs[:n_prompt] == pytest.approx(lp.token_logprobs[:n_prompt])

    stream = await engine.complete(
        model="tiny", prompt=prompt, echo=True, logprobs=1, max_tokens=2, temperature=0, stream=True
    )
    chunks = [c.choices[0] async for c in stream if c.choices]
    assert chunks[0].text == prompt and chunks[0].logprobs.token_logprobs[0] is None
    assert len(chunks[0].logprobs.tokens) == n_prompt


async def test_penalties_count_the_prompt(engine: AsyncEngine) -> None:
    """As in llama-server: a token the prompt repeats is penalised before it is ever generated."""
    word = 262  # one of the tiny vocabulary's words, pushed to the top by a logit bias
    common: dict[str, Any] = {"model": "tiny", "prompt": [word] * 40, "max_tokens": 1, "temperature": 0}
    common["logit_bias"] = {str(word): 50}
    free = await engine.complete(**common, logprobs=0)
    penalised = await engine.complete(**common, logprobs=0, frequency_penalty=2.0)
    assert free.choices[0].logprobs.tokens == [free.choices[0].text]  # one token, that word
    assert penalised.choices[0].text != free.choices[0].text  # 40 x 2.0 outweighs the +50 bias


@pytest.mark.parametrize(
    "options",
    [
        {"top_p": 0.5},
        {"top_k": 3},
        {"min_p": 0.2},
        {"repeat_penalty": 1.3},
        {"presence_penalty": 1.5},
        {"frequency_penalty": -1.0},
        {"temperature": 1.5, "top_p": 0.9, "top_k": 10, "min_p": 0.01, "repeat_penalty": 1.1,
         "presence_penalty": 0.5, "frequency_penalty": 0.5, "seed": 3},
        {"max_completion_tokens": 5},
    ],
)  # fmt: skip
async def test_every_sampling_option_generates(engine: AsyncEngine, options: dict[str, Any]) -> None:
    """Each option builds its llama.cpp sampler and generates (a wrong binding call fails here, as
    the penalties once did), and a seeded run repeats itself. What each option does to the
    distribution is llama.cpp's to test; test_penalties_count_the_prompt checks one effect."""
    kw: dict[str, Any] = {"model": "tiny", "messages": USER, "max_tokens": 8, "seed": 7, **options}
    first = await engine.chat(**kw)
    again = await engine.chat(**kw)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert 0 < first.usage.completion_tokens <= (5 if "max_completion_tokens" in options else 8)


# Each value moves the tiny model's seeded output away from llama.cpp's defaults.
CONFIG_SAMPLING = [
    {"temperature": 0.0},
    {"temperature": 2.0},
    {"top_k": 1},
    {"top_p": 0.01},
    {"min_p": 1.0},
    {"repeat_penalty": 50.0},
]


async def seeded(eng: AsyncEngine, **request: Any) -> str:
    r = await eng.chat(model="m", messages=USER, max_tokens=12, seed=11, logit_bias=NO_EOS, **request)
    return str(r.choices[0].message.content)


@pytest.mark.parametrize("setting", CONFIG_SAMPLING, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
async def test_the_model_config_sets_sampling_defaults(tiny_llama: Path, setting: dict[str, Any]) -> None:
    """A value in the model's config samples as the same value in the request would, and a value
    in the request wins over it."""
    plain_spec = {"name": "m", "model": str(tiny_llama), "context_length": 128}
    async with AsyncEngine({"models": [plain_spec]}) as plain:
        default = await seeded(plain)
        asked = await seeded(plain, **setting)
        hot = await seeded(plain, temperature=1.5)
    assert asked != default  # the value matters for this model, so the comparisons below mean something
    async with AsyncEngine({"models": [{**plain_spec, **setting}]}) as configured:
        assert await seeded(configured) == asked
        if "temperature" in setting:
            assert await seeded(configured, temperature=1.5) == hot


async def test_the_model_config_sets_max_tokens(tiny_llama: Path) -> None:
    spec = {"name": "m", "model": str(tiny_llama), "context_length": 128, "max_tokens": 3}
    async with AsyncEngine({"models": [spec]}) as eng:
        r = await eng.chat(model="m", messages=USER, logit_bias=NO_EOS)
        assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
        r = await eng.chat(model="m", messages=USER, logit_bias=NO_EOS, max_tokens=5)
        assert r.usage.completion_tokens == 5


async def test_suffix_asks_a_code_model_for_the_middle(engine: AsyncEngine, model_dir: Path) -> None:
    """`suffix` turns a completion into an insertion, which needs fill-in-the-middle tokens."""
    from tests.tiny_models import make_tiny_llama

    with pytest.raises(InvalidRequestError) as err:
        await engine.complete(model="tiny", prompt="def f(", suffix="return x", max_tokens=4)
    assert err.value.param == "suffix" and "fill-in-the-middle" in err.value.message
    fim = make_tiny_llama(model_dir / "tiny-fim.gguf", fim=True)
    async with AsyncEngine({"models": [{"name": "code", "model": str(fim), "context_length": 128}]}) as eng:
        plain = await eng.complete(model="code", prompt="the cat", max_tokens=4, temperature=0)
        infill = await eng.complete(
            model="code", prompt="the cat", suffix="a dog", max_tokens=4, temperature=0
        )
        # <s> <fim_prefix> the cat <fim_suffix> a dog <fim_middle>: three tokens more than <s> the cat a dog
        both = await eng.complete(model="code", prompt="the cat a dog", max_tokens=1, temperature=0)
        # a prompt given as token ids takes the same road: the same prompt, the same answer
        async with eng.pool.lease("code") as lease:
            ids = lease.runtime.tokenize("the cat", add_special=False)  # type: ignore[attr-defined]
        by_ids = await eng.complete(model="code", prompt=ids, suffix="a dog", max_tokens=4, temperature=0)
    assert infill.usage.prompt_tokens == both.usage.prompt_tokens + 3
    assert by_ids.usage.prompt_tokens == infill.usage.prompt_tokens
    assert by_ids.choices[0].text == infill.choices[0].text
    assert plain.usage.prompt_tokens < infill.usage.prompt_tokens
    assert infill.usage.completion_tokens > 0


async def test_multi_turn_reuses_the_cached_prefix(engine: AsyncEngine) -> None:
    first = await engine.chat(model="tiny", messages=USER, max_tokens=8, temperature=0)
    turn2 = USER + [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "yes no"},
    ]
    second = await engine.chat(model="tiny", messages=turn2, max_tokens=8, temperature=0)
    details = second.usage.prompt_tokens_details or {}
    assert details["cached_tokens"] >= first.usage.prompt_tokens - 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 99}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"99999999": 1}}, "logit_bias"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"schema": {"type": "object"}}}, "response_format.type"),  # no type
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}},
                }
            },
            "response_format.json_schema.schema",
        ),
        (
            # an image to a model without a projector: the part is named (tests/e2e/test_vision_http.py)
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content.0",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "x"}}]}]},
            "messages.0.content.0.type",
        ),
    ],
)
async def test_bad_input_raises_naming_the_field(
    engine: AsyncEngine, kwargs: dict[str, Any], param: str
) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": USER, **kwargs}
    with pytest.raises(InvalidRequestError) as info:
        await engine.chat(**request)
    assert info.value.param == param
    # and the model keeps serving
    assert (await engine.chat(model="tiny", messages=USER, max_tokens=2)).choices


async def test_n_larger_than_parallel_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await engine.chat(model="tiny", messages=USER, n=5)
    assert info.value.param == "n"


async def test_prompt_longer_than_context_fails_before_decoding(engine: AsyncEngine) -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        await engine.chat(model="tiny", messages=[{"role": "user", "content": "cat " * 400}])
    assert "context" in info.value.message
    assert info.value.details["context_length"] == 256


async def test_unknown_model_lists_the_available_ones(engine: AsyncEngine) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await engine.chat(model="nope", messages=USER)
    assert info.value.available == ["tiny"]


async def test_cancel_mid_stream_stops_decoding_and_frees_the_slot(tiny_llama_4k: Path) -> None:
    """Leaving a stream early ends its sequence at once, not after its 4000 tokens.

    EOS is banned and greedy sampling is used, so without the cancel the sequence must decode all
    4000 tokens (seconds on this model): the decoded-token count tells the two apart however
    fast the machine is.
    """
    engine = AsyncEngine(
        {"models": [{"name": "one", "model": str(tiny_llama_4k), "parallel": 1, "context_length": 4096}]}
    )
    try:
        lease = await engine.pool.acquire("one")
        runtime: Any = lease.runtime
        lease.release()
        before = runtime.tokens_decoded
        stream = await engine.chat(
            model="one", messages=USER, max_tokens=4000, temperature=0, logit_bias=NO_EOS, stream=True
        )
        got = 0
        async for _chunk in stream:
            got += 1
            if got == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await wait_until(lambda: runtime.active == 0, timeout=60)
        assert runtime.tokens_decoded - before < 1000, "the cancelled sequence kept decoding"
        # With one slot, this only runs once the cancelled sequence has let go of it.
        r = await engine.chat(model="one", messages=USER, max_tokens=3, temperature=0, logit_bias=NO_EOS)
        assert r.choices[0].finish_reason == "length"
        assert runtime.active == 0
    finally:
        await engine.close()


async def test_a_request_left_while_it_waits_for_a_slot_leaves_the_others_alone(tiny_llama_4k: Path) -> None:
    """A stream closed while it is still queued (one slot, taken) is dropped from the queue; the
    running stream goes on to its last token and the next request is served."""
    engine = AsyncEngine(
        {"models": [{"name": "one", "model": str(tiny_llama_4k), "parallel": 1, "context_length": 4096}]}
    )
    greedy: dict[str, Any] = {"temperature": 0, "logit_bias": NO_EOS, "stream": True}
    try:
        running = await engine.chat(model="one", messages=USER, max_tokens=400, **greedy)
        chunks = [await anext(running)]
        lease = await engine.pool.acquire("one")
        runtime: Any = lease.runtime
        lease.release()
        waiting = await engine.chat(model="one", messages=USER, max_tokens=5, **greedy)
        first = asyncio.ensure_future(anext(waiting))
        await wait_until(lambda: runtime.occupancy().queued == 1, timeout=30, what="the second to queue")
        first.cancel()
        await waiting.aclose()  # type: ignore[attr-defined]
        await wait_until(lambda: runtime.occupancy().queued == 0, timeout=30, what="the queue to drop it")
        chunks += [chunk async for chunk in running]
        assert chunks[-1].choices[0].finish_reason == "length"
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 300
        r = await engine.chat(model="one", messages=USER, max_tokens=3, temperature=0, logit_bias=NO_EOS)
        assert r.choices[0].finish_reason == "length"
    finally:
        await engine.close()


async def test_a_request_whose_placement_fails_hears_why(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Placing a job in a slot (restoring a cached prefix: native calls) can fail after the job
    left the queue; its caller must get the cause, not wait forever."""
    from claracore.runtime.placement import Placer

    def broken(self: Placer, job: Any, free: Any) -> Any:
        raise RuntimeError("placement broke")

    monkeypatch.setattr(Placer, "place", broken)
    with pytest.raises(ClaraCoreError, match="placement broke"):
        await asyncio.wait_for(engine.chat(model="tiny", messages=USER, max_tokens=3), timeout=60)


async def test_requests_running_and_queued_when_the_model_closes_hear_it_was_unloaded(
    tiny_llama_4k: Path,
) -> None:
    engine = AsyncEngine(
        {"models": [{"name": "one", "model": str(tiny_llama_4k), "parallel": 1, "context_length": 4096}]}
    )
    greedy: dict[str, Any] = {"temperature": 0, "logit_bias": NO_EOS, "max_tokens": 4000}
    try:
        lease = await engine.pool.acquire("one")
        runtime: Any = lease.runtime
        lease.release()
        running = await engine.chat(model="one", messages=USER, stream=True, **greedy)
        await anext(running)
        waiting = asyncio.ensure_future(engine.chat(model="one", messages=USER, **greedy))
        await wait_until(lambda: runtime.occupancy().queued == 1, timeout=30, what="the second to queue")
        await asyncio.to_thread(runtime.close)
        # (the engine tries a job that never started once more, and finds the model closing)
        with pytest.raises(ModelUnavailableError, match="'one' is unloading"):
            await asyncio.wait_for(waiting, timeout=60)

        async def rest() -> None:  # what was sent before the close, then the error
            async for _chunk in running:
                pass

        with pytest.raises(ModelUnavailableError, match="was unloaded"):
            await asyncio.wait_for(rest(), timeout=60)
    finally:
        await engine.close()


async def test_a_failed_decode_fails_its_request_and_forgets_what_the_slot_held(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_decode answering non-zero (1: no room in the KV cache) fails the requests in that
    batch with the status, and the slot's KV is forgotten: the same prompt next time is read
    again from the start (nothing cached) and answers as a freshly loaded model does, instead of
    reusing positions that were never written."""
    import llama_cpp

    real, failures = llama_cpp.llama_decode, [1]

    def flaky(ctx: Any, batch: Any) -> int:
        return failures.pop() if failures else int(real(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", flaky)
    messages = [{"role": "user", "content": "a question that fails once"}]
    with pytest.raises(ClaraCoreError, match="llama_decode failed with status 1"):
        await engine.chat(model="tiny", messages=messages, max_tokens=8, temperature=0)
    again = await engine.chat(model="tiny", messages=messages, max_tokens=8, temperature=0)
    assert again.usage.prompt_tokens_details["cached_tokens"] == 0
    await engine.unload("tiny")
    cold = await engine.chat(model="tiny", messages=messages, max_tokens=8, temperature=0)
    assert again.choices[0].message.content == cold.choices[0].message.content


async def test_the_template_gets_the_models_bos_and_eos_text(tiny_llama: Path) -> None:
    """Templates that write the end-of-turn token themselves (`{{ eos_token }}`) get the model's
    own text for it (`</s>` here), as they do BOS; the submit path also refuses work once the
    model is closing, with the model's name."""
    from claracore.protocol import openai as p
    from claracore.runtime.jobs import Job
    from claracore.serving.generation import render_chat

    template = "{{ bos_token }}|{{ eos_token }}|{% for m in messages %}{{ m.content }}{% endfor %}"
    spec = {"name": "t", "model": str(tiny_llama), "context_length": 256, "chat_template": template}
    engine = AsyncEngine({"models": [spec]})
    try:
        lease = await engine.pool.acquire("t")
        rt: Any = lease.runtime
        lease.release()
        request = p.ChatCompletionRequest.model_validate({"model": "t", "messages": USER})
        assert render_chat(rt, request, lease.spec) == "<s>|</s>|" + USER[0]["content"]
        rt.close()
        with pytest.raises(ModelUnavailableError, match="'t' is unloading"):
            rt.submit(Job(prompt=[1, 5, 6], params=[SamplingParams()], max_tokens=1, emit=lambda ev: None))
    finally:
        await engine.close()


def test_chat_messages_reach_the_template_as_the_templates_read_them() -> None:
    """Role (developer as system), name, text (none for a call's turn), the calls themselves and
    the id a tool answers: a template that prints them all gets each one."""
    from types import SimpleNamespace

    from claracore.config import ModelSpec
    from claracore.protocol import openai as p
    from claracore.runtime.chat_template import ChatTemplate
    from claracore.serving.generation import render_chat

    template = ChatTemplate(
        "{% for m in messages %}[{{ m.role }}|{{ m.name or '' }}|{{ m.content }}|"
        "{% for c in m.tool_calls or [] %}{{ c.function.name }}{{ c.function.arguments | tojson }}"
        "{% endfor %}"
        "|{{ m.tool_call_id or '' }}]{% endfor %}"
    )
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    request = p.ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "name": "ann", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": "2", "tool_call_id": "c1"},
            ],
        }
    )
    runtime: Any = SimpleNamespace(template=template)
    rendered = render_chat(runtime, request, ModelSpec(name="m", model="m.gguf"))
    assert rendered == '[system||Be brief.||][user|ann|hi||][assistant|||add{"a": 1}|][tool||2||c1]'
