"""Speech requests: transcription/translation (Whisper) and synthesis (Piper) for the engine.

The runtimes block, so their work runs in threads (each runtime bounds how many jobs it runs at
once). Synthesis yields audio sentence by sentence, so a client reading a stream hears the start
while the rest is being made. A transcription comes back as the runtime's `Transcription`;
`transcripts` writes it in the format the request asked for.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

from claracore.config import ModelSpec
from claracore.errors import InvalidRequestError, ModelNotFoundError
from claracore.pool.pool import Lease
from claracore.protocol import audio as a
from claracore.runtime.whisper import Transcription
from claracore.serving.audio import MEDIA_TYPES, available_formats, encode, wav_header

#: OpenAI's voice names: any of them selects the configured voice when it names no model itself.
OPENAI_VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    }
)

#: OpenAI's speech model names: each means "the voices configured here" unless a model has it.
OPENAI_SPEECH_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"})
#: Whisper conditions on at most the last 223 tokens of a prompt; more text only costs the
#: tokenizer time (a 100,000-character prompt took seconds), so only this tail is passed on.
PROMPT_TAIL_CHARS = 2048

STREAMABLE = ("wav", "pcm")  # PCM can be sent as it is made; compressed formats are encoded whole


async def transcribe(lease: Lease, audio: bytes, options: a.TranscriptionOptions, task: str) -> Transcription:
    """The transcription (or with task="translate", the English translation) of `audio`."""
    if not audio:
        raise InvalidRequestError("the uploaded file is empty", param="file")
    runtime: Any = lease.runtime
    result: Transcription = await asyncio.to_thread(
        runtime.transcribe,
        audio,
        language=options.language,
        prompt=options.prompt[-PROMPT_TAIL_CHARS:] if options.prompt else options.prompt,
        temperature=options.temperature,
        word_timestamps="word" in options.timestamp_granularities,
        task=task,
    )
    return result


def choose_voice(req: a.SpeechRequest, voices: list[ModelSpec], kind_of: Callable[[str], str]) -> str:
    """The voice model (its name) that speaks `req`, among the configured `voices`.

    `model` must be a configured text-to-speech model (its name or an alias), or one of OpenAI's
    speech model names (`tts-1`, ...) when no model has that name. `voice` may name a configured
    voice, which selects it among several; an OpenAI voice name (`alloy`, ...) means the model's
    own voice (the first voice for an OpenAI model name). Anything else is a 400 listing what
    exists; a model no one configured is a 404 listing the voices. `kind_of(name)` is the type
    of any configured model, raising ModelNotFoundError for an unknown one.
    """
    names = {n: s.name for s in voices for n in (s.name, *s.aliases)}
    listed = ", ".join(names) or "(no voices are configured)"
    try:
        kind: str | None = kind_of(req.model)
    except ModelNotFoundError:
        kind = None
    if req.model in names:
        chosen: str | None = names[req.model]
    elif kind is None and req.model in OPENAI_SPEECH_MODELS:
        chosen = voices[0].name if voices else None
    elif kind is None:
        raise ModelNotFoundError(req.model, list(names))
    else:
        why = f"model '{req.model}' is a {kind} model, not a text-to-speech voice; voices: {listed}"
        raise InvalidRequestError(why, param="model")
    if req.voice in names:
        return names[req.voice]
    if req.voice in OPENAI_VOICES and chosen is not None:
        return chosen
    known = ", ".join([*names, *sorted(OPENAI_VOICES)]) if voices else listed
    raise InvalidRequestError(f"voice '{req.voice}' is not available; voices: {known}", param="voice")


def media_type(fmt: str) -> str:
    """The content type for a speech format; unsupported ones are a 400 that lists what works."""
    formats = available_formats()
    if fmt not in formats:
        raise InvalidRequestError(
            f"response_format '{fmt}' is not available; use one of: {', '.join(formats)}",
            param="response_format",
        )
    return MEDIA_TYPES[fmt]


async def speak(lease: Lease, request: a.SpeechRequest) -> AsyncGenerator[bytes, None]:
    """Audio bytes as they are synthesised (WAV and PCM stream; mp3, opus, aac and flac come whole)."""
    media_type(request.response_format)
    runtime: Any = lease.runtime
    chunks: Iterator[bytes] = await asyncio.to_thread(runtime.synthesize, request.input, speed=request.speed)
    if request.response_format not in STREAMABLE:
        pcm = await asyncio.to_thread(lambda: list(chunks))
        yield encode(pcm, runtime.sample_rate, request.response_format)
        return
    if request.response_format == "wav":
        yield wav_header(runtime.sample_rate)
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        yield chunk


async def speech_events(
    chunks: AsyncIterator[bytes],
) -> AsyncIterator[a.SpeechAudioDelta | a.SpeechAudioDone]:
    """OpenAI's speech event stream (`stream_format: "sse"`): base64 audio as it is made, then done.

    Leaving early (a client gone mid-stream) closes `chunks`, which stops the synthesis.
    """
    try:
        async for chunk in chunks:
            yield a.SpeechAudioDelta(audio=base64.b64encode(chunk).decode("ascii"))
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    yield a.SpeechAudioDone()
