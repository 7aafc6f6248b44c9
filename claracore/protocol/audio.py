"""Wire types of the audio routes (speech to text, text to speech)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TranscriptFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
SpeechFormat = Literal["wav", "pcm", "flac", "mp3", "opus", "aac"]


class TranscriptionOptions(BaseModel):
    """The form fields of /v1/audio/transcriptions and /translations (the file travels apart)."""

    model_config = ConfigDict(extra="allow")
    model: str
    language: str | None = None
    prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    response_format: TranscriptFormat = "json"
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=list)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    input: str = Field(min_length=1, max_length=4096)
    voice: str
    response_format: SpeechFormat = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] | None = None

    @field_validator("input")
    @classmethod
    def _speakable(cls, value: str) -> str:
        """The phonemizer takes C strings: a NUL would fail mid-stream, after the 200."""
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class SpeechAudioDelta(BaseModel):
    """One piece of audio in a `stream_format: "sse"` speech stream, base64 of the format's bytes."""

    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str


class SpeechAudioDone(BaseModel):
    """The last event of a `stream_format: "sse"` speech stream."""

    type: Literal["speech.audio.done"] = "speech.audio.done"
