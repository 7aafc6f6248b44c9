"""Text to speech: Piper voices (`.onnx` + `.onnx.json`) through piper-tts.

This module is the one seam to piper-tts. piper-tts is GPL-3.0-or-later, so it is only an
optional extra (`claracore[tts]`): it is imported when a voice loads, never by `import
claracore`, and a missing install is an ImportError that says how to install it.

Audio comes out one sentence at a time as 16-bit mono PCM, so the HTTP layer can stream the
first sentence while the rest is still being synthesised.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from claracore.errors import InvalidRequestError, ModelUnavailableError
from claracore.units import MIB

#: OpenAI's accepted range for `speed`.
MIN_SPEED = 0.25
MAX_SPEED = 4.0

#: espeak-ng, which phonemises the text, is a C library with global state and not thread-safe;
#: ONNX inference is. So phonemisation alone is serialised, across every loaded voice.
_ESPEAK_LOCK = threading.Lock()


@dataclass(frozen=True)
class PiperOptions:
    """Where a voice lives: the `.onnx` file, with its `.onnx.json` config beside it."""

    path: str


def length_scale(speed: float, base: float = 1.0) -> float:
    """Piper's length_scale for an OpenAI `speed`: durations scale by 1/speed.

    `base` is the voice's own default length_scale, so speed 1.0 keeps the voice as trained.
    """
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidRequestError(
            f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}", param="speed"
        )
    return base / speed


def estimate_memory(options: PiperOptions) -> int:
    """Bytes of RAM the voice will hold, from its file alone, for the pool's budget.

    Measured for en_US-joe-medium (60 MiB .onnx): 113 MiB resident after load (onnxruntime
    keeps the graph and its initialisers), about 100 MiB more while speaking a paragraph.
    So: twice the file, plus 128 MiB of working memory.
    """
    return 2 * os.path.getsize(options.path) + 128 * MIB


def _import_piper() -> Any:
    """Import piper-tts on first use, with an install hint instead of a bare ImportError."""
    try:
        import piper
    except ImportError as e:
        raise ImportError(
            "text to speech needs the optional piper-tts package (GPL-3.0): pip install 'claracore[tts]'"
        ) from e
    return piper


class PiperRuntime:
    """A loaded Piper voice; `synthesize` may be called from several threads."""

    kind = "tts"

    def __init__(self, options: PiperOptions, *, name: str = "") -> None:
        """Load the voice (blocking). A missing `.onnx` or `.onnx.json`: ValueError."""
        self.options = options
        self.name = name or os.path.splitext(os.path.basename(options.path))[0]
        config_path = options.path + ".json"
        if not os.path.isfile(options.path):
            raise ValueError(f"Piper voice not found: {options.path}")
        if not os.path.isfile(config_path):
            raise ValueError(f"Piper voice config not found beside the model: {config_path}")
        piper = _import_piper()
        try:
            self._voice: Any = piper.PiperVoice.load(options.path, config_path=config_path)
        except Exception as e:  # onnxruntime and json raise assorted types for a bad file
            raise ValueError(f"cannot load Piper voice {options.path}: {e}") from e
        self._syn_config_cls: Any = piper.SynthesisConfig
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._base_length_scale = float(self._voice.config.length_scale)
        self._closed = False

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[bytes]:
        """Yield 16-bit mono PCM, one chunk per sentence, each as soon as it is synthesised.

        Arguments are checked before the first chunk, so a bad request fails on the first
        `next()` before any response has started.
        """
        if not text or not text.strip():
            raise InvalidRequestError("input must not be empty", param="input")
        syn_config = self._syn_config_cls(length_scale=length_scale(speed, self._base_length_scale))
        voice = self._live()
        with _ESPEAK_LOCK:
            sentences = voice.phonemize(text)
        return self._chunks(voice, sentences, syn_config)

    def _chunks(self, voice: Any, sentences: list[list[str]], syn_config: Any) -> Iterator[bytes]:
        """Run the voice sentence by sentence, normalised to full scale as piper itself does."""
        for phonemes in sentences:
            if not phonemes:
                continue
            if self._closed:
                raise ModelUnavailableError(f"model '{self.name}' was unloaded")
            ids = voice.phonemes_to_ids(phonemes)
            audio = np.asarray(voice.phoneme_ids_to_audio(ids, syn_config), dtype=np.float32)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            if peak > 1e-8:
                audio = audio / peak
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
            yield pcm.tobytes()

    def _live(self) -> Any:
        """The voice, or ModelUnavailableError once closed."""
        voice = self._voice
        if self._closed or voice is None:
            raise ModelUnavailableError(f"model '{self.name}' was unloaded")
        return voice

    def close(self) -> None:
        """Drop the ONNX session; in-flight syntheses fail at their next sentence."""
        self._closed = True
        self._voice = None
