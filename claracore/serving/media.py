"""Images and audio in chat messages: found in the content parts, and their bytes fetched.

OpenAI's shapes: `{"type": "image_url", "image_url": {"url": ...}}`, where the URL is a
`data:` URL or, when the config's `media.remote_urls` allows it, an http(s) URL fetched with a
size and time limit; and `{"type": "input_audio", "input_audio": {"data": base64, "format"}}`.
Every failure is a 400 that names the content part (`messages.0.content.1`), never a hang:
remote fetches have a deadline, and bodies stop at the size limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

import httpx

from claracore.config import MediaLimits
from claracore.errors import InvalidRequestError
from claracore.protocol import openai as p

#: Content part types and the media kind each carries.
KINDS = {"image_url": "image", "input_audio": "audio"}

#: `input_audio.format` values: OpenAI's two, and FLAC, which libmtmd decodes as well. libmtmd
#: reads the container from the bytes themselves, so the field is checked, not trusted.
AUDIO_FORMATS = ("wav", "mp3", "flac")


@dataclass(frozen=True)
class MediaPart:
    """One media content part: where it is in the request and where its bytes come from."""

    field: str  # messages.I.content.J
    kind: str  # "image" or "audio"
    source: str  # a URL, or base64 audio


@dataclass(frozen=True)
class Media:
    """A media part's bytes, ready for the model's projector."""

    kind: str
    data: bytes
    field: str


def media_parts(messages: list[p.ChatMessage]) -> list[MediaPart]:
    """Every image or audio part of `messages`, in prompt order; malformed ones are a 400."""
    found = []
    for i, message in enumerate(messages):
        if not isinstance(message.content, list):
            continue
        for j, part in enumerate(message.content):
            kind = KINDS.get(part.type)
            if kind is None:
                continue
            field = f"messages.{i}.content.{j}"
            body = (part.model_extra or {}).get(part.type)
            key = "url" if kind == "image" else "data"
            value = body.get(key) if isinstance(body, dict) else body if kind == "image" else None
            if not isinstance(value, str) or not value:
                raise InvalidRequestError(
                    f"{field}.{part.type}.{key} is missing", param=f"{field}.{part.type}"
                )
            if kind == "audio" and isinstance(body, dict) and "format" in body:
                _check_format(body["format"], f"{field}.input_audio.format")
            found.append(MediaPart(field, kind, value))
    return found


def _check_format(value: object, field: str) -> None:
    """A 400 naming `field` unless `value` is an audio format libmtmd decodes (absent is fine:
    the bytes say what they are)."""
    if value not in AUDIO_FORMATS:
        raise InvalidRequestError(
            f"{field} is {value!r}; the audio formats are {', '.join(AUDIO_FORMATS)}", param=field
        )


async def load(parts: list[MediaPart], limits: MediaLimits) -> list[Media]:
    """The bytes of every part, remote ones fetched concurrently."""
    if not parts:
        return []
    max_bytes = int(limits.max_mb * 1024 * 1024)
    async with httpx.AsyncClient(timeout=limits.fetch_timeout, follow_redirects=True) as client:
        datas = await asyncio.gather(*(_bytes(part, limits, max_bytes, client) for part in parts))
    return [Media(part.kind, data, part.field) for part, data in zip(parts, datas, strict=True)]


async def _bytes(part: MediaPart, limits: MediaLimits, max_bytes: int, client: httpx.AsyncClient) -> bytes:
    source = part.source
    if part.kind == "audio":
        return _decode(source, part.field, max_bytes)
    if source.startswith("data:"):
        header, sep, payload = source.partition(",")
        if not sep or ";base64" not in header:
            raise InvalidRequestError(
                f"{part.field}: a data URL must be base64 (data:image/png;base64,...)", param=part.field
            )
        return _decode(payload, part.field, max_bytes)
    if source.startswith(("http://", "https://")):
        if not limits.remote_urls:
            raise InvalidRequestError(
                f"{part.field}: this server does not fetch image URLs (media.remote_urls is off); "
                "send a data URL",
                param=part.field,
            )
        return await _fetch(source, part.field, max_bytes, limits.fetch_timeout, client)
    raise InvalidRequestError(f"{part.field}: the image URL must be a data: or http(s) URL", param=part.field)


def _decode(payload: str, field: str, max_bytes: int) -> bytes:
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise InvalidRequestError(f"{field} is larger than the {max_bytes >> 20} MB media limit", param=field)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{field} is not valid base64", param=field) from None


async def _fetch(url: str, field: str, max_bytes: int, timeout: float, client: httpx.AsyncClient) -> bytes:
    async def get() -> bytes:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise InvalidRequestError(
                    f"{field}: fetching {url} answered HTTP {response.status_code}", param=field
                )
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > max_bytes:
                    raise InvalidRequestError(
                        f"{field} is larger than the {max_bytes >> 20} MB media limit", param=field
                    )
            return bytes(body)

    try:
        return await asyncio.wait_for(get(), timeout)  # the whole fetch, not each read
    except (httpx.HTTPError, TimeoutError) as exc:
        reason = (
            "timed out"
            if isinstance(exc, TimeoutError | httpx.TimeoutException)
            else str(exc) or type(exc).__name__
        )
        raise InvalidRequestError(f"{field}: could not fetch {url} ({reason})", param=field) from None


def check_inputs(parts: list[MediaPart] | list[Media], model: str, inputs: list[str]) -> None:
    """A 400 naming the first part this model cannot take."""
    for part in parts:
        if part.kind not in inputs:
            takes = " and ".join(["text", *inputs])
            what = "an image" if part.kind == "image" else "audio"
            raise InvalidRequestError(
                f"{part.field} is {what}; model '{model}' takes {takes} only",
                param=part.field,
            )
