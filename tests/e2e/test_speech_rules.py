"""Speech requests mean what they say: `model` must be a voice model (or OpenAI's speech model
names), `voice` selects among the configured voices, input the phonemizer cannot take is a 400
before any audio, and a Whisper prompt costs no more than what Whisper can use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from claracore.manage.defaults import BUNDLED
from claracore.runtime.whisper import WhisperRuntime
from claracore.serving.speech import PROMPT_TAIL_CHARS
from tests.e2e.server import running_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tiny_llama: Path) -> Iterator[tuple[str, Any]]:
    found = {b.name: b.locate() for b in BUNDLED if b.spec["type"] in ("stt", "tts")}
    if not all(found.values()):
        pytest.skip("the Whisper and Piper model packages are not installed")
    joe = str(found["joe"])
    config = {
        "models": [
            {"name": "tiny", "model": str(tiny_llama), "context_length": 256},
            {"name": "whisper", "model": str(found["whisper-tiny.en"]), "type": "stt"},
            {"name": "joe", "model": joe, "type": "tts", "aliases": ["tts-1"]},
            {"name": "joe-again", "model": joe, "type": "tts"},
        ]
    }
    with running_server(config) as running:
        yield running


def speak(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/audio/speech", json={"input": "Hello.", **body}, timeout=60)


@pytest.mark.parametrize(
    "body,status,param",
    [
        ({"model": "tiny", "voice": "alloy"}, 400, "model"),  # an LLM is not a voice
        ({"model": "whisper", "voice": "alloy"}, 400, "model"),
        ({"model": "tts-1", "voice": "nobody"}, 400, "voice"),
        ({"model": "tts-1", "voice": "tiny"}, 400, "voice"),
        ({"model": "ghost", "voice": "alloy"}, 404, None),
        ({"model": "tts-1", "voice": "alloy", "input": "Hello.\x00 Again."}, 400, "input"),
    ],
)
def test_what_is_not_a_voice_is_refused_before_any_audio(
    server: tuple[str, Any], body: dict[str, Any], status: int, param: str | None
) -> None:
    """Found: an LLM as `model`, or any voice string, answered audio; a NUL in the input cut the
    stream after a 200."""
    r = speak(server[0], **body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert "joe" in error["message"] or param == "input"  # lists what exists


def test_the_voice_selects_among_the_configured_voices(server: tuple[str, Any]) -> None:
    url, engine = server
    assert speak(url, model="tts-1", voice="alloy").status_code == 200
    assert {m.id: m.state for m in engine.models().data}["joe-again"] == "unloaded"
    r = speak(url, model="tts-1", voice="joe-again")
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    assert {m.id: m.state for m in engine.models().data}["joe-again"] == "loaded"
    assert speak(url, model="gpt-4o-mini-tts", voice="nova").status_code == 200  # OpenAI's names


def test_a_long_whisper_prompt_is_cut_to_what_whisper_uses(
    server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found: a 100,000-character prompt took 26 s; Whisper uses only its last 223 tokens."""
    url, _ = server
    audio = speak(url, model="tts-1", voice="alloy", response_format="wav").content
    seen: list[int] = []
    real = WhisperRuntime.transcribe

    def spy(self: WhisperRuntime, audio: bytes, **kwargs: Any) -> Any:
        seen.append(len(kwargs.get("prompt") or ""))
        return real(self, audio, **kwargs)

    monkeypatch.setattr(WhisperRuntime, "transcribe", spy)
    prompt = "glossary " * 12_000
    files = {"file": ("a.wav", audio, "audio/wav")}
    # A repetitive prompt can lead Whisper into repeating itself up to its token limit: slow on
    # a loaded 2-core machine (60 s ran out once), so the bound is wide.
    r = httpx.post(
        url + "/v1/audio/transcriptions",
        files=files,
        data={"model": "whisper", "prompt": prompt},
        timeout=180,
    )
    assert r.status_code == 200 and isinstance(r.json()["text"], str)
    assert seen == [PROMPT_TAIL_CHARS]
