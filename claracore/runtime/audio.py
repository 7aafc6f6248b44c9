"""Encoding synthesised speech into the container formats the speech route answers with.

Piper yields raw 16-bit mono PCM. WAV and PCM need nothing beyond the standard library, so they
always work; FLAC needs `soundfile` (libsndfile wheels), which is optional: without it the caller
gets a clear 400 naming ``response_format`` instead of a 500 from a missing import.
"""

from __future__ import annotations

import importlib
import io
import struct
import wave
from collections.abc import Iterable
from typing import Any

import numpy as np

from claracore.errors import InvalidRequestError

SAMPLE_WIDTH = 2  # bytes per sample: 16-bit signed little-endian, what Piper produces
CHANNELS = 1

#: Formats `encode` accepts; FLAC is only usable when soundfile imports (see `available_formats`).
FORMATS = ("wav", "pcm", "flac")

#: The media type to answer with for each format.
MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac"}


def _soundfile() -> Any | None:
    """Import soundfile lazily: it loads libsndfile, which costs time and may be absent."""
    try:
        return importlib.import_module("soundfile")
    except (ImportError, OSError):
        return None


def available_formats() -> tuple[str, ...]:
    """The formats this installation can produce, for listing in error messages and docs."""
    return FORMATS if _soundfile() is not None else ("wav", "pcm")


def encode(pcm_chunks: Iterable[bytes], sample_rate: int, fmt: str) -> bytes:
    """Join 16-bit mono PCM chunks and wrap them in the container `fmt` names.

    Raises InvalidRequestError(param="response_format") for an unknown format, or for FLAC
    when `soundfile` is not installed, so the HTTP layer answers 400 rather than 500.
    """
    if fmt not in FORMATS:
        raise InvalidRequestError(
            f"response_format '{fmt}' is not supported; use one of: {', '.join(available_formats())}",
            param="response_format",
        )
    pcm = b"".join(pcm_chunks)
    if fmt == "pcm":
        return pcm
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(CHANNELS)
            w.setsampwidth(SAMPLE_WIDTH)
            w.setframerate(sample_rate)
            w.writeframes(pcm)
        return buf.getvalue()
    sf = _soundfile()
    if sf is None:
        raise InvalidRequestError(
            "response_format 'flac' needs the optional 'soundfile' package "
            "(pip install soundfile); use one of: wav, pcm",
            param="response_format",
        )
    samples = np.frombuffer(pcm, dtype="<i2")
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte WAV header for a stream whose length is not known yet.

    The RIFF and data sizes are set to 0xFFFFFFFF, the convention ffmpeg and browsers accept for
    streamed WAV: the audio can start playing while later sentences are still being synthesised.
    """
    unknown = 0xFFFFFFFF
    byte_rate = sample_rate * CHANNELS * SAMPLE_WIDTH
    block_align = CHANNELS * SAMPLE_WIDTH
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, CHANNELS, sample_rate, byte_rate, block_align, 8 * SAMPLE_WIDTH)
        + b"data"
        + struct.pack("<I", unknown)
    )
