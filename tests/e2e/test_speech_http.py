"""Speech over HTTP with the official openai client: Piper speaks, Whisper hears the same words."""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from claracore.manage.defaults import BUNDLED
from tests.e2e.server import running_server

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    found = {b.name: b.locate() for b in BUNDLED if b.spec["type"] in ("stt", "tts")}
    if not all(found.values()):
        pytest.skip("the Whisper and Piper model packages are not installed")
    pytest.importorskip("faster_whisper")
    pytest.importorskip("piper")
    config = {
        "models": [
            {
                "name": "whisper",
                "model": str(found["whisper-tiny.en"]),
                "type": "stt",
                "aliases": ["whisper-1"],
            },
            {"name": "joe", "model": str(found["joe"]), "type": "tts"},
        ]
    }
    with running_server(config) as (base, _engine):
        yield base + "/v1"


@pytest.fixture(scope="module")
def spoken(url: str) -> bytes:
    with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
        audio = client.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCE, response_format="wav"
        )
        return audio.read()


def test_speech_is_a_wav_file(spoken: bytes) -> None:
    with wave.open(io.BytesIO(spoken)) as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 1
        data = w.readframes(w.getnframes() if w.getnframes() < 2**31 else 10**8)
    assert len(data) > 22050  # more than half a second of speech


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_transcription_formats_round_trip(url: str, spoken: bytes, fmt: str) -> None:
    with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
        result: Any = client.audio.transcriptions.create(
            model="whisper-1", file=("fox.wav", spoken), response_format=fmt
        )  # type: ignore[call-overload]
    text = result if isinstance(result, str) else result.text
    heard = words(text)
    if fmt in ("srt", "vtt"):
        heard = [w for w in heard if w not in ("webvtt",)]
        assert "-->" in text
    expected = words(SENTENCE)
    assert sum(1 for w in expected if w in heard) >= len(expected) - 1, text
    if fmt == "verbose_json":
        assert result.language and result.duration > 1 and result.segments


def test_word_timestamps_and_translation(url: str, spoken: bytes) -> None:
    with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=("fox.wav", spoken),
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
        assert result.words and result.words[0].end > result.words[0].start
    # the openai client marks its translations call deprecated, so this one goes through httpx
    translated = httpx.post(
        url + "/audio/translations",
        files={"file": ("fox.wav", spoken)},
        data={"model": "whisper", "response_format": "verbose_json"},
        timeout=60,
    ).json()
    assert "fox" in words(translated["text"]) and translated["task"] == "translate"


def test_bad_audio_is_400_never_500(url: str) -> None:
    base = url.removesuffix("/v1")
    for name, data in (("empty.wav", b""), ("notes.txt", b"this is not audio at all" * 10)):
        r = httpx.post(
            base + "/v1/audio/transcriptions", files={"file": (name, data)}, data={"model": "whisper"}
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "file"
    r = httpx.post(
        base + "/v1/audio/speech",
        json={"model": "joe", "input": "hi", "voice": "joe", "response_format": "ogg"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = httpx.post(base + "/v1/audio/speech", json={"model": "x", "input": "hi", "voice": "nobody"})
    assert r.status_code == 404 and "joe" in r.json()["error"]["message"]


def test_speech_streams_as_it_is_made(url: str) -> None:
    base = url.removesuffix("/v1")
    text = "First sentence here. Second sentence follows. And a third one."
    with httpx.stream(
        "POST",
        base + "/v1/audio/speech",
        json={"model": "joe", "voice": "joe", "input": text, "response_format": "pcm"},
        timeout=60,
    ) as r:
        assert r.headers["content-type"].startswith("audio/pcm")
        sizes = [len(chunk) for chunk in r.iter_raw() if chunk]
    assert len(sizes) >= 2 and sum(sizes) > 3 * 22050  # arrived in pieces, several seconds long
    assert json.dumps(sizes)  # sanity: plain ints


@pytest.mark.parametrize(("fmt", "media_type"), [("mp3", "audio/mpeg"), ("opus", "audio/ogg")])
def test_compressed_speech_decodes_to_the_spoken_length(url: str, fmt: str, media_type: str) -> None:
    """mp3 is OpenAI's default format, so most clients ask for it; opus comes in Ogg, as there."""
    av = pytest.importorskip("av")
    with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
        reply = client.audio.speech.create(model="joe", voice="joe", input=SENTENCE, response_format=fmt)
        assert reply.response.headers["content-type"].startswith(media_type)
        data = reply.read()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        seconds = sum(frame.samples for frame in container.decode(stream)) / stream.rate
    assert 1.0 < seconds < 10.0  # one spoken sentence


def test_speech_as_server_sent_events(url: str) -> None:
    """`stream_format: "sse"`: base64 audio deltas as they are made, then speech.audio.done."""
    base = url.removesuffix("/v1")
    body = {
        "model": "joe",
        "voice": "joe",
        "input": SENTENCE,
        "response_format": "wav",
        "stream_format": "sse",
    }
    with httpx.stream("POST", base + "/v1/audio/speech", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[-1:]] == ["speech.audio.done"]
    deltas = events[:-1]
    assert len(deltas) >= 2 and all(e["type"] == "speech.audio.delta" for e in deltas)
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert audio[:4] == b"RIFF" and len(audio) > 22050  # a streamed WAV, over half a second of it
