"""The OpenAI-compatible API over real HTTP, driven by the official `openai` client and httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.server import running_server
from tests.tiny_models import NO_EOS
from tests.waiting import wait_for

USER = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def server(tiny_llama: Path, tiny_bert: Path, tiny_llama_4k: Path) -> Iterator[tuple[str, Any]]:
    config = {
        "cors": ["http://ui.example"],
        "models": [
            {
                "name": "tiny",
                "model": str(tiny_llama),
                "context_length": 256,
                "parallel": 4,
                "aliases": ["t"],
            },
            {"name": "solo", "model": str(tiny_llama), "context_length": 512, "parallel": 1},
            {"name": "embedder", "model": str(tiny_bert), "type": "embedding"},
            # room for the tool instructions, which the tiny vocabulary spells out letter by letter
            {"name": "tools", "model": str(tiny_llama_4k), "context_length": 2048, "parallel": 1},
            {"name": "long", "model": str(tiny_llama_4k), "context_length": 4096, "parallel": 1},
        ],
    }
    with running_server(config) as running:
        yield running


@pytest.fixture
def client(server: tuple[str, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(server: tuple[str, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_models_list_and_get(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["tiny", "solo", "embedder", "tools", "long"]
    first = models.data[0].model_dump()
    assert first["object"] == "model" and first["type"] == "llm" and first["aliases"] == ["t"]
    assert first["state"] in ("unloaded", "loaded")
    assert models.data[1].model_dump()["memory"]["ram_bytes"] > 0  # estimated before any load
    assert client.models.retrieve("t").id == "tiny"  # an alias resolves
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.body["code"] == "MODEL_NOT_FOUND"  # type: ignore[index]


def test_a_loaded_llm_lists_its_prompt_cache(client: openai.OpenAI, server: tuple[str, Any]) -> None:
    """What the cache holds and that the pool counts its grant, for dashboards and benchmarks."""
    for word in ("cat", "dog"):  # one slot: the second question saves the first conversation
        client.chat.completions.create(
            model="solo",
            messages=[{"role": "user", "content": f"{word} " * 30}],
            max_tokens=2,  # type: ignore[arg-type]
        )
    listed = httpx.get(server[0] + "/v1/models/solo").json()
    cache = listed["prompt_cache"]
    assert cache["entries"] >= 1 and cache["saves"] >= 1
    assert 0 < cache["bytes"] <= cache["limit_bytes"] <= listed["memory"]["ram_bytes"]
    assert set(cache) == {
        "limit_bytes", "bytes", "entries", "lookups", "hits", "restored_tokens", "saves", "failures"
    }  # fmt: skip
    unloaded = httpx.get(server[0] + "/v1/models/embedder").json()
    assert unloaded["prompt_cache"] is None


def test_chat_sync(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=5,
        temperature=0,  # type: ignore[arg-type]
        user="someone",
        extra_body={"made_up_field": 1},
    )
    assert r.object == "chat.completion"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert client.models.retrieve("tiny").model_dump()["state"] == "loaded"


def test_chat_stream_sync_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="t",
        messages=USER,
        max_tokens=6,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(model="t", messages=USER, max_tokens=6, temperature=0)  # type: ignore[arg-type]
    assert text == whole.choices[0].message.content


async def test_chat_async_stream_and_not(aclient: openai.AsyncOpenAI) -> None:
    r = await aclient.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=4,
        n=2,
        seed=3,  # type: ignore[arg-type]
        logprobs=True,
        top_logprobs=2,
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].logprobs is not None and len(r.choices[0].logprobs.content or []) == 4
    stream = await aclient.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=4,
        stream=True,
        seed=3,
        logit_bias=NO_EOS,  # type: ignore[arg-type]
    )
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
    assert finishes[-1] == "length"


def test_json_schema_and_seed(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    kw: dict[str, Any] = {
        "model": "tiny",
        "messages": USER,
        "max_tokens": 20,
        "seed": 5,
        "temperature": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert isinstance(json.loads(a.choices[0].message.content or "")["ok"], bool)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="tiny", prompt=["the cat", "a dog"], max_tokens=3, echo=True, logprobs=2, temperature=0
    )
    assert r.object == "text_completion"
    assert r.choices[0].text.startswith("the cat") and r.choices[1].text.startswith("a dog")
    lp = r.choices[0].logprobs
    assert lp is not None and lp.token_logprobs is not None and lp.tokens is not None
    # echo scores the prompt too (the first token has no context), then the 3 generated tokens
    assert lp.token_logprobs[0] is None and len(lp.tokens) > 3
    assert all(isinstance(v, float) for v in lp.token_logprobs[1:])
    stream = client.completions.create(
        model="tiny", prompt="the cat", max_tokens=3, temperature=0, stream=True
    )
    text = "".join(c.choices[0].text for c in stream if c.choices)
    single = client.completions.create(model="tiny", prompt="the cat", max_tokens=3, temperature=0)
    assert text == single.choices[0].text


def test_raw_sse_framing(server: tuple[str, Any]) -> None:
    body = {"model": "tiny", "messages": USER, "max_tokens": 5, "stream": True, "logit_bias": NO_EOS}
    with httpx.stream("POST", server[0] + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = events[:-2]
    assert all(e.startswith("data: {") and "\n" not in e for e in payloads)  # no comments, one line each
    chunks = [json.loads(e[6:]) for e in payloads]
    assert "role" in chunks[0]["choices"][0]["delta"]
    assert all(
        "role" not in c["choices"][0]["delta"] or c["choices"][0]["delta"]["role"] is None for c in chunks[1:]
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_disconnect_mid_stream_cancels_the_sequence(server: tuple[str, Any]) -> None:
    """A client that goes away ends its generation at once, not after its 4000 tokens.

    EOS is banned and sampling is greedy, so only a cancel ends the sequence early; the
    decoded-token count tells the two apart however fast the machine is.
    """
    url, engine = server
    assert httpx.post(url + "/api/models/long/load", timeout=60).status_code == 200
    runtime = next(e.runtime for e in engine.pool._entries.values() if e.spec.name == "long")
    before = runtime.tokens_decoded
    body = {
        "model": "long",
        "messages": USER,
        "max_tokens": 4000,
        "stream": True,
        "temperature": 0,
        "logit_bias": NO_EOS,
    }
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i > 6:
                break
    wait_for(lambda: runtime.active == 0, timeout=60, what="the disconnected stream's slot to be freed")
    assert runtime.tokens_decoded - before < 1000, "the disconnected sequence kept decoding"
    r2 = httpx.post(url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 3}, timeout=30)
    assert r2.status_code == 200 and r2.json()["choices"][0]["finish_reason"] == "length"


BAD = [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "lots"}, "max_tokens"),
    ({"n": 5}, "n"),  # tiny decodes at most 4 together
    ({"n": 1000}, "n"),
    ({"temperature": [1]}, "temperature"),
    ({"messages": [{"role": "user", "content": "cat " * 400}]}, "messages"),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"properties": {"a": {"$ref": "#/x"}}}},
            }
        },
        "response_format.json_schema.schema",
    ),
    ({"stop": 7}, "stop"),
    ({"logit_bias": {"cat": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 150}}, "logit_bias"),  # OpenAI's range is -100..100: refused, not clamped
    ({"logit_bias": {"5": -100.5}}, "logit_bias"),
    ({"logit_bias": {"100000": 1}}, "logit_bias"),  # past tiny's vocabulary
]


@pytest.mark.parametrize(("patch", "param"), BAD)
def test_bad_requests_are_400_naming_the_field(
    client: openai.OpenAI, patch: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**{"model": "tiny", "messages": USER, **patch})
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == param, body
    assert param.split(".")[0] in body["message"] or "context" in body["message"]


def test_malformed_json_and_unknown_routes(server: tuple[str, Any]) -> None:
    url = server[0]
    r = httpx.post(
        url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_JSON"
    r = httpx.post(url + "/v1/chat/completions", json=[1, 2])
    assert r.status_code == 400 and "detail" not in r.json()
    r = httpx.get(url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = httpx.post(url + "/v1/models")
    assert r.status_code == 405 and "error" in r.json()


def test_wrong_model_kind_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="embedder", messages=USER)  # type: ignore[arg-type]
    assert "not a chat" in str(info.value)


def test_unknown_model_is_404_listing_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=USER)  # type: ignore[arg-type]
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "MODEL_NOT_FOUND"
    assert body["details"]["availableModels"] == ["tiny", "solo", "embedder", "tools", "long"]


def test_hundred_bad_requests_leave_it_serving(server: tuple[str, Any]) -> None:
    url = server[0] + "/v1/chat/completions"
    with httpx.Client(timeout=30) as http:
        for i in range(100):
            patch, _ = BAD[i % len(BAD)]
            r = http.post(url, json={"model": "tiny", "messages": USER, **patch})
            assert r.status_code == 400
        r = http.post(url, json={"model": "tiny", "messages": USER, "max_tokens": 3, "logit_bias": NO_EOS})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


def test_cors(server: tuple[str, Any]) -> None:
    r = httpx.options(
        server[0] + "/v1/models",
        headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.headers["access-control-allow-origin"] == "http://ui.example"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# The tiny random model cannot choose to call a tool, so a grammar makes it write one in the
# bare-JSON shape Llama 3 uses; what is tested is the server turning that text into tool_calls.
CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"enum": ["get_weather"]},
        "arguments": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}


def test_tool_calls_through_the_openai_client(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {
        "model": "tools",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [WEATHER],
        "max_tokens": 150,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "call", "schema": CALL_SCHEMA}},
    }
    r = client.chat.completions.create(**kw)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(client.chat.completions.create(**kw, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(d.content for d in deltas)  # the call's JSON is never streamed as text
    streamed = [tc for d in deltas for tc in d.tool_calls or []]
    assert [(tc.function.name, json.loads(tc.function.arguments or "")) for tc in streamed] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # the second turn of the loop: the call and its result go back in, and the model answers
    after = client.chat.completions.create(
        model="tools",
        tools=[WEATHER],
        max_tokens=5,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "sunny, 21 C"},
        ],
    )
    assert after.choices[0].message.content and after.usage is not None and after.usage.prompt_tokens > 10

    plain = client.chat.completions.create(**{**kw, "tool_choice": "none"})
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "stop"
    # the tiny template ignores `tools`, so they came as a system message, and "none" left it out
    assert r.usage is not None and plain.usage is not None
    assert r.usage.prompt_tokens > plain.usage.prompt_tokens + 50
    assert json.loads(plain.choices[0].message.content or "") == {
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
