"""Speech routes: transcriptions and translations (multipart upload), and speech synthesis."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response, StreamingResponse

from claracore.engine import AsyncEngine
from claracore.errors import PayloadTooLargeError
from claracore.protocol import audio as a
from claracore.protocol.validation import parse
from claracore.server.deps import EngineDep, require_key
from claracore.server.openapi import SSE_EVENTS, answers
from claracore.server.sse import sse_response
from claracore.serving.audio import MEDIA_TYPES
from claracore.serving.speech import speech_events
from claracore.serving.transcripts import format_transcription
from claracore.units import MIB

router = APIRouter(prefix="/v1/audio", dependencies=[Depends(require_key)])
Task = Literal["transcribe", "translate"]
_TEXT = {"type": "string"}
TRANSCRIPT = answers(
    None,
    **{
        "application/json": {
            "schema": {"type": "object", "required": ["text"], "properties": {"text": _TEXT}}
        }
    },
    **{"text/plain": {"schema": _TEXT}, "text/vtt": {"schema": _TEXT}},
)
AUDIO = answers(
    None,
    **{t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(set(MEDIA_TYPES.values()))},
    **SSE_EVENTS,
)


async def _read(upload: UploadFile, limit_mb: float) -> bytes:
    """The upload, refused without reading it all when it is over the configured limit."""
    limit = int(limit_mb * MIB)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"the file is larger than the {limit_mb:g} MB limit (max_upload_mb)", param="file"
        )
    return data


async def _speech_to_text(eng: AsyncEngine, file: UploadFile, task: Task, form: dict[str, Any]) -> Response:
    audio = await _read(file, eng.config.max_upload_mb)
    options = parse(a.TranscriptionOptions, {k: v for k, v in form.items() if v is not None})
    result = await eng.transcribe(audio, options, task=task)
    body, media_type = format_transcription(result, options.response_format, task=task)
    return Response(body, media_type=media_type)


@router.post("/transcriptions", responses=TRANSCRIPT)
async def transcriptions(
    eng: EngineDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[str | None, Form()] = None,
    response_format: Annotated[str | None, Form()] = None,
    granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
) -> Response:
    return await _speech_to_text(
        eng,
        file,
        "transcribe",
        {
            "model": model,
            "language": language,
            "prompt": prompt,
            "temperature": temperature,
            "response_format": response_format,
            "timestamp_granularities": granularities,
        },
    )


@router.post("/translations", responses=TRANSCRIPT)
async def translations(
    eng: EngineDep,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[str | None, Form()] = None,
    response_format: Annotated[str | None, Form()] = None,
) -> Response:
    return await _speech_to_text(
        eng,
        file,
        "translate",
        {
            "model": model,
            "prompt": prompt,
            "temperature": temperature,
            "response_format": response_format,
        },
    )


@router.post("/speech", responses=AUDIO)
async def speech(request: a.SpeechRequest, eng: EngineDep) -> Response:
    chunks, media_type = await eng.speak_stream(request)
    if request.stream_format == "sse":
        return sse_response(speech_events(chunks), done_marker=False)
    return StreamingResponse(chunks, media_type=media_type)
