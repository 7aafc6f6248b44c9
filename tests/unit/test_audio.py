"""Audio encoding, transcription formatting and TTS speed mapping: no models, no optional deps."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from claracore.errors import InvalidRequestError
from claracore.runtime import piper as piper_rt
from claracore.runtime import whisper as whisper_rt
from claracore.runtime.piper import PiperRuntime, length_scale
from claracore.runtime.whisper import Segment, Transcription, Word
from claracore.serving import audio
from claracore.serving.transcripts import format_transcription


def _tone(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(-32768, 32767, n, dtype="<i2").tobytes()


# --- encode ---------------------------------------------------------------------------------


def test_wav_round_trips_through_wave() -> None:
    chunks = [_tone(1000, 1), _tone(500, 2)]
    data = audio.encode(iter(chunks), 22050, "wav")
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        assert w.getnframes() == 1500
        assert w.readframes(1500) == b"".join(chunks)


def test_pcm_is_the_raw_samples() -> None:
    chunks = [_tone(300), _tone(200, 5)]
    data = audio.encode(chunks, 16000, "pcm")
    assert len(data) == 500 * 2
    assert data == b"".join(chunks)


def test_unknown_format_names_response_format() -> None:
    with pytest.raises(InvalidRequestError) as e:
        audio.encode([_tone(10)], 16000, "ogg")
    assert e.value.param == "response_format"
    assert "wav" in e.value.message


HAS_AV = importlib.util.find_spec("av") is not None
MAGIC = {
    "mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3"),
    "opus": (b"OggS",),
    "aac": (b"\xff\xf1",),
    "flac": (b"fLaC",),
}


@pytest.mark.skipif(not HAS_AV, reason="PyAV not installed (the tts and stt extras bring it)")
@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
def test_compressed_formats_decode_back_to_the_same_length(fmt: str) -> None:
    import av

    seconds, rate = 1.5, 22050
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    data = audio.encode([pcm[:1000], pcm[1000:]], rate, fmt)
    assert data.startswith(MAGIC[fmt])
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray() for f in container.decode(stream)]
        decoded_rate = stream.rate
    assert decoded_rate == (48000 if fmt == "opus" else rate)
    assert sum(f.shape[-1] for f in frames) / decoded_rate == pytest.approx(seconds, abs=0.1)
    if fmt == "flac":  # lossless: the very samples
        assert np.concatenate([f.reshape(-1) for f in frames]).astype("<i2").tobytes() == pcm


@pytest.fixture
def no_pyav(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if PyAV were not installed (the encoder lookup is cached, so clear it both ways)."""
    real = audio._optional
    monkeypatch.setattr(audio, "_optional", lambda name: None if name == "av" else real(name))
    audio._encoder.cache_clear()
    yield
    audio._encoder.cache_clear()


@pytest.mark.usefixtures("no_pyav")
def test_without_pyav_compressed_formats_are_a_clear_400() -> None:
    with pytest.raises(InvalidRequestError) as e:
        audio.encode([_tone(10)], 16000, "mp3")
    assert e.value.param == "response_format"
    assert "PyAV" in e.value.message and "wav" in e.value.message
    assert audio.available_formats() == ("wav", "pcm")


def test_streaming_wav_header() -> None:
    h = audio.wav_header(22050)
    assert len(h) == 44
    assert h[:4] == b"RIFF" and h[8:16] == b"WAVEfmt " and h[36:40] == b"data"
    fmt, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", h[20:36])
    assert (fmt, channels, rate, byte_rate, align, bits) == (1, 1, 22050, 44100, 2, 16)
    assert struct.unpack("<I", h[40:44])[0] == 0xFFFFFFFF


# --- format_transcription -------------------------------------------------------------------

T = Transcription(
    text="Hello there. General Kenobi.",
    language="en",
    duration=3725.5,
    segments=(
        Segment(
            id=0,
            start=0.0,
            end=1.5,
            text=" Hello there.",
            avg_logprob=-0.2,
            no_speech_prob=0.01,
            words=(Word(0.0, 0.6, " Hello", 0.9), Word(0.6, 1.5, " there.", 0.8)),
        ),
        Segment(
            id=1,
            start=3723.004,
            end=3725.4996,
            text=" General Kenobi.",
            avg_logprob=-0.3,
            no_speech_prob=0.02,
        ),
    ),
)


def test_json() -> None:
    body, media = format_transcription(T, "json")
    assert json.loads(body) == {"text": "Hello there. General Kenobi."}
    assert media == "application/json"


def test_text() -> None:
    body, media = format_transcription(T, "text")
    assert body == "Hello there. General Kenobi.\n"
    assert media.startswith("text/plain")


def test_srt_timestamps_are_exact() -> None:
    body, _ = format_transcription(T, "srt")
    assert body == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n"
        "\n"
        "2\n01:02:03,004 --> 01:02:05,500\nGeneral Kenobi.\n"
    )


def test_vtt_timestamps_are_exact() -> None:
    body, media = format_transcription(T, "vtt")
    assert body == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\nHello there.\n"
        "\n"
        "01:02:03.004 --> 01:02:05.500\nGeneral Kenobi.\n"
    )
    assert media.startswith("text/vtt")


def test_verbose_json_has_openai_shape() -> None:
    body, media = format_transcription(T, "verbose_json", task="translate")
    d = json.loads(body)
    assert media == "application/json"
    assert (d["task"], d["language"], d["duration"], d["text"]) == (
        "translate",
        "en",
        3725.5,
        "Hello there. General Kenobi.",
    )
    assert [s["id"] for s in d["segments"]] == [0, 1]
    seg = d["segments"][0]
    for key in (
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    ):
        assert key in seg
    assert "words" not in seg
    assert d["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.6},
        {"word": "there.", "start": 0.6, "end": 1.5},
    ]


def test_verbose_json_without_words_omits_them() -> None:
    t = Transcription(text="", language="en", duration=0.5, segments=())
    d = json.loads(format_transcription(t, "verbose_json")[0])
    assert "words" not in d and d["segments"] == [] and d["task"] == "transcribe"


def test_unknown_response_format() -> None:
    with pytest.raises(InvalidRequestError) as e:
        format_transcription(T, "xml")
    assert e.value.param == "response_format"


# --- speed -> length_scale ------------------------------------------------------------------


@pytest.mark.parametrize(("speed", "expected"), [(1.0, 1.0), (2.0, 0.5), (0.5, 2.0), (4.0, 0.25)])
def test_speed_maps_to_inverse_length_scale(speed: float, expected: float) -> None:
    assert length_scale(speed) == pytest.approx(expected)


def test_speed_scales_the_voice_default() -> None:
    assert length_scale(2.0, base=1.2) == pytest.approx(0.6)


@pytest.mark.parametrize("speed", [0.0, 0.2, 4.5, -1.0])
def test_speed_out_of_range(speed: float) -> None:
    with pytest.raises(InvalidRequestError) as e:
        length_scale(speed)
    assert e.value.param == "speed"


class _FakeVoice:
    """Records what PiperRuntime hands to piper, without piper or a model."""

    def __init__(self) -> None:
        self.configs: list[Any] = []

    def phonemize(self, text: str) -> list[list[str]]:
        return [list(s) for s in text.split(".") if s]

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]:
        return [ord(p) for p in phonemes]

    def phoneme_ids_to_audio(self, ids: list[int], syn_config: Any) -> np.ndarray:
        self.configs.append(syn_config)
        return np.full(len(ids) * 10, 0.25, dtype=np.float32)


class _FakeSynthesisConfig:
    def __init__(self, length_scale: float | None = None) -> None:
        self.length_scale = length_scale


def _fake_runtime() -> tuple[PiperRuntime, _FakeVoice]:
    rt = PiperRuntime.__new__(PiperRuntime)
    voice = _FakeVoice()
    rt.name, rt._voice, rt._closed = "fake", voice, False
    rt._syn_config_cls, rt._base_length_scale, rt.sample_rate = _FakeSynthesisConfig, 1.0, 22050
    return rt, voice


def test_synthesize_passes_length_scale_and_yields_a_chunk_per_sentence() -> None:
    rt, voice = _fake_runtime()
    chunks: Iterator[bytes] = rt.synthesize("ab.cde.", speed=2.0)
    out = list(chunks)
    assert [len(c) for c in out] == [2 * 10 * 2, 3 * 10 * 2]
    # normalised to full scale, as piper does
    assert np.frombuffer(out[0], dtype="<i2").max() == 32767
    assert [c.length_scale for c in voice.configs] == [0.5, 0.5]


def test_synthesize_rejects_empty_input_before_any_audio() -> None:
    rt, _ = _fake_runtime()
    with pytest.raises(InvalidRequestError) as e:
        rt.synthesize("   ")
    assert e.value.param == "input"


# --- memory estimates -----------------------------------------------------------------------

MIB = 2**20


def test_whisper_estimate_grows_with_file_and_jobs(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0" * (4 * MIB))
    one = whisper_rt.estimate_memory(whisper_rt.WhisperOptions(str(tmp_path), max_concurrent=1))
    two = whisper_rt.estimate_memory(whisper_rt.WhisperOptions(str(tmp_path), max_concurrent=2))
    f32 = whisper_rt.estimate_memory(
        whisper_rt.WhisperOptions(str(tmp_path), compute_type="float32", max_concurrent=1)
    )
    assert one == 4 * MIB + 32 * MIB + 96 * MIB + 4 * MIB
    assert two - one == 96 * MIB + 4 * MIB
    assert f32 - one == 4 * MIB


def test_piper_estimate(tmp_path: Path) -> None:
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"\0" * (3 * MIB))
    assert piper_rt.estimate_memory(piper_rt.PiperOptions(str(onnx))) == 6 * MIB + 128 * MIB
