"""Audio in chat over HTTP: `input_audio` parts (OpenAI's shape) through the official openai
client to a real server, on the tiny LLM with a generated audio projector (Ultravox's layout);
every bad part is a 400 naming it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.server import running_server
from tests.tiny_models import (
    AUDIO_TOKENS,
    NO_EOS,
    make_tiny_audio_mmproj,
    make_tiny_llama,
    make_tiny_mmproj,
    png_bytes,
    wav_bytes,
)

NOISE = wav_bytes(1.0, seed=1)
TONE = wav_bytes(1.0, hz=440)


def audio(clip: bytes | str, audio_format: Any = "wav") -> dict[str, Any]:
    data = clip if isinstance(clip, str) else base64.b64encode(clip).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}


def asking(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is it"}, *parts]}]


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    llm = make_tiny_llama(model_dir / "tiny-audio-llm.gguf")
    base = {"model": str(llm), "context_length": 256, "parallel": 1}
    config = {
        "models": [
            {"name": "audio", **base, "mmproj": str(make_tiny_audio_mmproj(model_dir / "mmproj-audio.gguf"))},
            {"name": "vision", **base, "mmproj": str(make_tiny_mmproj(model_dir / "mmproj-vision.gguf"))},
            {"name": "text", **base},
        ],
    }
    with running_server(config) as (url, _):
        yield url


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server + "/v1", api_key="x", max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, messages: list[dict[str, Any]], model: str = "audio", **kw: Any) -> Any:
    options: dict[str, Any] = {"max_tokens": 6, "temperature": 0, "logit_bias": NO_EOS, **kw}
    return client.chat.completions.create(model=model, messages=messages, **options)  # type: ignore[arg-type]


def first_scores(reply: Any) -> list[tuple[str, float]]:
    top = reply.choices[0].logprobs.content[0].top_logprobs
    return [(t.token, round(t.logprob, 4)) for t in top]


def refused(client: openai.OpenAI, messages: list[dict[str, Any]], model: str = "audio") -> dict[str, Any]:
    """The error object of a request that must be a 400."""
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, messages, model)
    assert info.value.status_code == 400
    body: dict[str, Any] = info.value.body  # type: ignore[assignment]
    return body


def test_models_list_what_each_takes(client: openai.OpenAI) -> None:
    inputs = {m.id: m.model_dump()["inputs"] for m in client.models.list().data}
    assert inputs == {"audio": ["text", "audio"], "vision": ["text", "image"], "text": ["text"]}


def test_a_chat_with_a_clip_counts_its_audio_tokens_and_repeats(client: openai.OpenAI) -> None:
    text_only = chat(client, asking())
    lp: dict[str, Any] = {"logprobs": True, "top_logprobs": 5}
    noise = chat(client, asking(audio(NOISE)), **lp)
    assert noise.choices[0].message.content
    assert noise.usage.prompt_tokens == text_only.usage.prompt_tokens + AUDIO_TOKENS
    both = chat(client, asking(audio(NOISE), audio(TONE, "wav")))
    assert both.usage.prompt_tokens == text_only.usage.prompt_tokens + 2 * AUDIO_TOKENS
    tone = chat(client, asking(audio(TONE)), **lp)
    assert first_scores(tone) != first_scores(noise)
    again = chat(client, asking(audio(NOISE)), **lp)
    assert first_scores(again) == first_scores(noise)
    assert again.choices[0].message.content == noise.choices[0].message.content
    # no format given: the bytes say what they are
    bare = {"type": "input_audio", "input_audio": {"data": base64.b64encode(NOISE).decode()}}
    assert first_scores(chat(client, asking(bare), **lp)) == first_scores(noise)


@pytest.mark.parametrize(
    ("model", "part", "says"),
    [
        ("vision", audio(NOISE), "model 'vision' takes text and image only"),
        ("text", audio(NOISE), "model 'text' takes text only"),
        (
            "audio",
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            "model 'audio' takes text and audio only",
        ),
    ],
)
def test_a_model_given_what_it_cannot_take_is_400_naming_the_part(
    client: openai.OpenAI, model: str, part: dict[str, Any], says: str
) -> None:
    error = refused(client, asking(part), model)
    assert error["param"] == "messages.0.content.1", error
    assert says in error["message"], error


@pytest.mark.parametrize(
    ("part", "param", "says"),
    [
        (audio("@@@not base64@@@"), "messages.0.content.1", "not valid base64"),
        (audio(NOISE, "ogg"), "messages.0.content.1.input_audio.format", "'ogg'"),
        (audio(NOISE, 16000), "messages.0.content.1.input_audio.format", "16000"),
        (
            {"type": "input_audio", "input_audio": {"format": "wav"}},
            "messages.0.content.1.input_audio",
            "missing",
        ),
        (audio(b"hello, not audio at all"), "messages.0.content.1", "is not audio"),
        (audio(png_bytes(8, 8, (200, 0, 0))), "messages.0.content.1", "is not audio"),
        (audio(wav_bytes(0.0)), "messages.0.content.1", ""),  # a WAV header and no samples
    ],
)
def test_bad_audio_is_400_naming_the_field(
    client: openai.OpenAI, part: dict[str, Any], param: str, says: str
) -> None:
    error = refused(client, asking(part))
    assert error["param"] == param, error
    assert says in error["message"], error


def test_an_image_sent_as_audio_is_named_where_it_is(client: openai.OpenAI) -> None:
    """libmtmd reads a PNG as an image whatever part brought it: the second part is the bad one."""
    error = refused(client, asking(audio(NOISE), audio(png_bytes(8, 8, (0, 0, 0), seed=3))))
    assert error["param"] == "messages.0.content.2", error
    assert "is not audio" in error["message"], error
