"""Speech to text: Whisper through faster-whisper (CTranslate2 model folders).

This module is the one seam to faster-whisper: nothing else in ClaraCore imports it, and it is
imported only when a model loads, so the `stt` extra stays optional and `import claracore` stays
fast. Everything the rest of ClaraCore sees is plain frozen dataclasses, and every failure a
caller can cause (an empty or undecodable file, a bad language) is an InvalidRequestError, so the
HTTP layer answers 400, never 500. How a transcription is written out (json, srt, vtt,
verbose_json) is `claracore.serving.transcripts`.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import Any

from claracore.errors import InvalidRequestError, ModelUnavailableError
from claracore.units import MIB

#: Whisper's own fallback schedule: at temperature 0 OpenAI retries hotter when decoding fails
#: its compression/logprob thresholds, and faster-whisper does the same given this tuple.
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class WhisperOptions:
    """How to load one Whisper model. `threads` 0 lets CTranslate2 choose."""

    path: str
    device: str = "cpu"
    compute_type: str = "int8"
    threads: int = 0
    max_concurrent: int = 2


@dataclass(frozen=True)
class Word:
    """One word with its timing, when word timestamps were asked for."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded segment; the trailing defaulted fields exist for OpenAI's verbose_json."""

    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    compression_ratio: float = 0.0


@dataclass(frozen=True)
class Transcription:
    """A whole transcription: the joined text plus the segments it came from."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...]


#: Resident bytes per byte of model.bin once loaded: CTranslate2 keeps the stored precision for
#: the int8 and float16 variants, and widens to float32 (2x a float16 file) otherwise.
_WEIGHT_FACTOR = {"float32": 2.0, "int8_float32": 1.0}


def estimate_memory(options: WhisperOptions) -> int:
    """Bytes of RAM (or VRAM) the model will hold, from its files alone, for the pool's budget.

    Measured for tiny.en int8 on CPU: model.bin 72 MiB, 98 MiB resident after load, and about
    170 MiB more while transcribing 30 s (mel features, encoder output, PyAV buffers). So: the
    weights, plus per concurrent job a fixed 96 MiB and one more model.bin's worth, since the
    encoder activations grow with the model.
    """
    size = os.path.getsize(os.path.join(options.path, "model.bin"))
    weights = int(size * _WEIGHT_FACTOR.get(options.compute_type, 1.0)) + 32 * MIB
    per_job = 96 * MIB + size
    return weights + max(1, options.max_concurrent) * per_job


def _import_faster_whisper() -> Any:
    """Import faster-whisper on first use, with an install hint instead of a bare ImportError."""
    try:
        import faster_whisper
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("speech to text needs faster-whisper: pip install 'claracore[stt]'") from e
    return faster_whisper


class WhisperRuntime:
    """A loaded Whisper model, safe to call from several threads at once.

    CTranslate2 runs `max_concurrent` decodes truly in parallel (one worker each), so the
    semaphore and the worker count are the same number: more callers wait rather than
    oversubscribing the CPU.
    """

    kind = "stt"

    def __init__(self, options: WhisperOptions, *, name: str = "") -> None:
        """Load the model now (blocking). A folder that is not a CTranslate2 model: ValueError."""
        self.options = options
        self.name = name or os.path.basename(os.path.normpath(options.path))
        # Checked here, not left to faster-whisper: given a path that is not a folder it would
        # treat the string as a Hugging Face model id and try to download it.
        if not os.path.isdir(options.path):
            raise ValueError(f"Whisper model folder not found: {options.path}")
        if not os.path.isfile(os.path.join(options.path, "model.bin")):
            raise ValueError(f"not a CTranslate2 Whisper folder (no model.bin): {options.path}")
        fw = _import_faster_whisper()
        workers = max(1, options.max_concurrent)
        try:
            self._model: Any = fw.WhisperModel(
                options.path,
                device=options.device,
                compute_type=options.compute_type,
                cpu_threads=options.threads,
                num_workers=workers,
                local_files_only=True,
            )
        except (RuntimeError, OSError, ValueError) as e:
            raise ValueError(f"cannot load Whisper model from {options.path}: {e}") from e
        self._decode_audio = fw.audio.decode_audio
        self._sampling_rate: int = self._model.feature_extractor.sampling_rate
        self.languages: tuple[str, ...] = tuple(self._model.supported_languages)
        self._slots = threading.BoundedSemaphore(workers)
        self._closed = False

    def _decode(self, audio: bytes) -> Any:
        """Decode any container PyAV reads into 16 kHz mono float32, or raise a 400."""
        if not audio:
            raise InvalidRequestError("the audio file is empty", param="file")
        try:
            samples = self._decode_audio(io.BytesIO(audio), sampling_rate=self._sampling_rate)
        except Exception as e:  # PyAV raises many types (InvalidDataError, EOFError, ...)
            raise InvalidRequestError(f"the audio file could not be decoded: {e}", param="file") from e
        if samples.size == 0:
            raise InvalidRequestError("the audio file contains no audio", param="file")
        return samples

    def transcribe(
        self,
        audio: bytes,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        word_timestamps: bool = False,
        task: str = "transcribe",
    ) -> Transcription:
        """Transcribe (or translate to English) one audio file given as bytes. Blocking."""
        if task not in TASKS:
            raise InvalidRequestError(f"task must be one of {', '.join(TASKS)}", param="task")
        if language is not None and language not in self.languages:
            raise InvalidRequestError(
                f"language '{language}' is not supported by this model; "
                f"use one of: {', '.join(self.languages)}",
                param="language",
            )
        if not 0.0 <= temperature <= 1.0:
            raise InvalidRequestError("temperature must be between 0 and 1", param="temperature")
        temperatures = _FALLBACK_TEMPERATURES if temperature == 0.0 else (temperature,)
        with self._slots:
            model = self._live()
            samples = self._decode(audio)
            segments_iter, info = model.transcribe(
                samples,
                language=language,
                task=task,
                initial_prompt=prompt or None,
                temperature=temperatures,
                word_timestamps=word_timestamps,
            )
            segments: list[Segment] = []
            # The generator decodes lazily: consume it while holding the slot.
            for i, s in enumerate(segments_iter):
                if self._closed:
                    raise ModelUnavailableError(f"model '{self.name}' was unloaded")
                segments.append(_segment(i, s))
        text = "".join(s.text for s in segments).strip()
        return Transcription(
            text=text, language=info.language, duration=float(info.duration), segments=tuple(segments)
        )

    def _live(self) -> Any:
        """The model, or ModelUnavailableError once closed."""
        model = self._model
        if self._closed or model is None:
            raise ModelUnavailableError(f"model '{self.name}' was unloaded")
        return model

    def close(self) -> None:
        """Drop the model; CTranslate2 frees it once in-flight calls (which then fail) let go."""
        self._closed = True
        self._model = None


def _segment(index: int, s: Any) -> Segment:
    """Copy a faster-whisper Segment into ours, so no faster-whisper type escapes the seam.

    Ids count from 0 as OpenAI's do (faster-whisper counts from 1).
    """
    words = tuple(
        Word(start=float(w.start), end=float(w.end), word=w.word, probability=float(w.probability))
        for w in (s.words or ())
    )
    return Segment(
        id=index,
        start=float(s.start),
        end=float(s.end),
        text=s.text,
        avg_logprob=float(s.avg_logprob),
        no_speech_prob=float(s.no_speech_prob),
        words=words,
        seek=int(s.seek),
        tokens=tuple(int(t) for t in s.tokens),
        temperature=float(s.temperature or 0.0),
        compression_ratio=float(s.compression_ratio),
    )
