"""Media parts found in chat messages, and the limits on their bytes, without a model."""

from __future__ import annotations

import base64

import pytest

from claracore.config import MediaLimits
from claracore.errors import InvalidRequestError
from claracore.protocol import openai as p
from claracore.serving.media import check_inputs, load, media_parts


def message(*parts: dict[str, object]) -> p.ChatMessage:
    return p.ChatMessage.model_validate({"role": "user", "content": [{"type": "text", "text": "hi"}, *parts]})


def test_parts_in_prompt_order_with_their_fields() -> None:
    msgs = [
        message({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}),
        p.ChatMessage(role="assistant", content="plain"),
        message({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        message({"type": "image_url", "image_url": "data:image/png;base64,AQ=="}),  # the URL bare
    ]
    parts = media_parts(msgs)
    assert [(x.field, x.kind) for x in parts] == [
        ("messages.0.content.1", "image"),
        ("messages.2.content.1", "audio"),
        ("messages.3.content.1", "image"),
    ]
    with pytest.raises(InvalidRequestError) as err:
        check_inputs(parts, "m", ["image"])
    assert err.value.param == "messages.2.content.1"
    check_inputs(parts, "m", ["image", "audio"])


async def test_remote_urls_are_refused_unless_the_config_allows_them() -> None:
    parts = media_parts([message({"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}})])
    with pytest.raises(InvalidRequestError) as err:
        await load(parts, MediaLimits())
    assert err.value.param == "messages.0.content.1" and "remote_urls" in str(err.value)


async def test_data_urls_decode_and_the_size_limit_holds() -> None:
    blob = bytes(range(256)) * 8
    url = "data:image/png;base64," + base64.b64encode(blob).decode()
    parts = media_parts([message({"type": "image_url", "image_url": {"url": url}})])
    assert (await load(parts, MediaLimits()))[0].data == blob
    with pytest.raises(InvalidRequestError, match="larger than"):
        await load(parts, MediaLimits(max_mb=0.001))


@pytest.mark.parametrize("audio_format", ["ogg", "WAV", 16000, None, ["wav"]])
def test_an_audio_format_other_than_wav_mp3_or_flac_is_a_400_naming_it(audio_format: object) -> None:
    part: dict[str, object] = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": audio_format}}
    with pytest.raises(InvalidRequestError) as err:
        media_parts([message(part)])
    assert err.value.param == "messages.0.content.1.input_audio.format"


def test_the_audio_formats_libmtmd_decodes_pass_and_format_may_be_left_out() -> None:
    parts: list[dict[str, object]] = [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": f}} for f in ("wav", "mp3", "flac")
    ]
    parts.append({"type": "input_audio", "input_audio": {"data": "AAAA"}})  # the bytes say what they are
    assert [x.kind for x in media_parts([message(*parts)])] == ["audio"] * 4
