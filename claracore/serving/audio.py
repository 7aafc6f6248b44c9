"""Encoding synthesised speech into the container formats the speech route answers with.

Piper yields raw 16-bit mono PCM. WAV and PCM need nothing beyond the standard library, so they
always work. The compressed formats OpenAI's API names (mp3, its default; opus in Ogg; aac in
ADTS; flac) are encoded with PyAV, which the `tts` and `stt` extras install and whose wheels carry
ffmpeg's encoders. A format this installation cannot encode is a clear 400 naming
``response_format`` that lists what does work, never a 500 from an import.
"""

from __future__ import annotations

import importlib
import io
import struct
import wave
from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np

from claracore.errors import InvalidRequestError

SAMPLE_WIDTH = 2  # bytes per sample: 16-bit signed little-endian, what Piper produces
CHANNELS = 1

#: Every format the speech route knows, in the order error messages list them.
FORMATS = ("wav", "pcm", "mp3", "opus", "aac", "flac")

#: The media type to answer with for each format.
MEDIA_TYPES = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
}

# format -> (ffmpeg container, encoders to try in order, bit rate). Ogg is what "opus" means in
# OpenAI's API. The rates are ample for one voice in mono; ffmpeg's defaults are lower for mp3.
_CONTAINERS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "mp3": ("mp3", ("libmp3lame",), 64_000),
    "opus": ("ogg", ("libopus", "opus"), 32_000),
    "aac": ("adts", ("aac",), 64_000),
    "flac": ("flac", ("flac",), 0),
}


def _optional(name: str) -> Any | None:
    """Import an optional codec package lazily: each loads native libraries and may be absent."""
    try:
        return importlib.import_module(name)
    except (ImportError, OSError):
        return None


@cache
def _encoder(fmt: str) -> str | None:
    """The PyAV encoder that can write `fmt` here, if any (wheels differ in what they carry)."""
    av = _optional("av")
    if av is None or fmt not in _CONTAINERS:
        return None
    for name in _CONTAINERS[fmt][1]:
        try:
            av.Codec(name, "w")
        except ValueError:  # PyAV's UnknownCodecError: this build has no such encoder
            continue
        return name
    return None


def available_formats() -> tuple[str, ...]:
    """The formats this installation can produce, for listing in error messages and docs."""
    return tuple(f for f in FORMATS if f in ("wav", "pcm") or _encoder(f))


def encode(pcm_chunks: Iterable[bytes], sample_rate: int, fmt: str) -> bytes:
    """Join 16-bit mono PCM chunks and wrap them in the container `fmt` names.

    Raises InvalidRequestError(param="response_format") for an unknown format, or for one this
    installation has no encoder for, so the HTTP layer answers 400 rather than 500.
    """
    if fmt not in available_formats():
        known = "is not supported" if fmt not in FORMATS else "needs PyAV (pip install av)"
        raise InvalidRequestError(
            f"response_format '{fmt}' {known}; use one of: {', '.join(available_formats())}",
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
    encoder = _encoder(fmt)
    assert encoder is not None  # available_formats() found it
    return _encode_av(pcm, sample_rate, fmt, encoder)


def _encode_av(pcm: bytes, sample_rate: int, fmt: str, encoder: str) -> bytes:
    """Encode through ffmpeg. PyAV converts sample format, rate and frame size to what the encoder
    takes (Opus only runs at 48 kHz and below on fixed rates; Piper voices are 16 or 22.05 kHz)."""
    av: Any = _optional("av")
    container, _, bit_rate = _CONTAINERS[fmt]
    samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        rate = 48000 if fmt == "opus" else sample_rate
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
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
