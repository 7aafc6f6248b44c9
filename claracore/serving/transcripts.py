"""Transcriptions written the way OpenAI's API answers them: json, text, srt, vtt, verbose_json.

The Whisper runtime returns a plain `Transcription`; the wire formats and their media types live
here, beside the other answers the engine's requests turn into, so `runtime/` holds model code only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from claracore.errors import InvalidRequestError
from claracore.runtime.whisper import Transcription

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _timestamp(seconds: float, sep: str) -> str:
    """HH:MM:SS<sep>mmm, rounded to the millisecond (SRT uses ',', WebVTT '.')."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _srt(t: Transcription) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(t.segments, start=1)
    ]
    return "\n".join(blocks)


def _vtt(t: Transcription) -> str:
    blocks = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in t.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _verbose(t: Transcription, task: str) -> dict[str, Any]:
    segments = []
    for s in t.segments:
        d = dataclasses.asdict(s)
        del d["words"]
        d["tokens"] = list(s.tokens)
        segments.append(d)
    body: dict[str, Any] = {
        "task": task,
        "language": t.language,
        "duration": t.duration,
        "text": t.text,
        "segments": segments,
    }
    words = [w for s in t.segments for w in s.words]
    if words:
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for w in words]
    return body


def format_transcription(
    t: Transcription, response_format: str, *, task: str = "transcribe"
) -> tuple[str, str]:
    """Render a transcription the way OpenAI's API does: (body, media type).

    `task` only shows in verbose_json ("transcribe" or "translate"), as OpenAI reports it.
    """
    if response_format == "json":
        return json.dumps({"text": t.text}, ensure_ascii=False), "application/json"
    if response_format == "text":
        return t.text + "\n", "text/plain; charset=utf-8"
    if response_format == "srt":
        return _srt(t), "text/plain; charset=utf-8"
    if response_format == "vtt":
        return _vtt(t), "text/vtt; charset=utf-8"
    if response_format == "verbose_json":
        return json.dumps(_verbose(t, task), ensure_ascii=False), "application/json"
    raise InvalidRequestError(
        f"response_format '{response_format}' is not supported; use one of: " + ", ".join(RESPONSE_FORMATS),
        param="response_format",
    )
