"""The engine: the one facade that the CLI, the HTTP server and Python callers use.

`AsyncEngine` is the core; it is loop-agnostic (the pool and runtimes talk to asyncio only
through futures and `call_soon_threadsafe`), so it works from any event loop. `Engine` is the
thin sync face: it runs an `AsyncEngine` on a private loop thread rather than copying methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import ValidationError

from claracore import embeddings, generation, replies, speech
from claracore.config import Config, load_config, parse_config
from claracore.errors import InvalidRequestError
from claracore.hardware import budget_from, detect_memory
from claracore.pool import loaders
from claracore.pool.pool import Lease, ModelPool, ModelStatus
from claracore.protocol import audio as a
from claracore.protocol import openai as p
from claracore.protocol.validation import describe
from claracore.runtime.native import supports_gpu_offload

T = TypeVar("T")
ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def _config(config: ConfigLike) -> Config:
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    return load_config(Path(config))


def _request(cls: type[T], request: T | Mapping[str, Any] | None, kwargs: dict[str, Any]) -> T:
    """Validate a request given as an object, a dict or keyword arguments.

    Raises InvalidRequestError naming the first bad field (dotted path).
    """
    if isinstance(request, cls):
        return request.model_copy(update=kwargs) if kwargs else request  # type: ignore[attr-defined]
    data = {**(dict(request) if isinstance(request, Mapping) else {}), **kwargs}
    try:
        return cls.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        field, msg = describe(exc)
        raise InvalidRequestError(f"{field or 'request'}: {msg}", param=field or None) from None


class AsyncEngine:
    """Serves the configured models; every method is safe to call concurrently.

    Create from a `Config`, a dict shaped like config.yaml, or a path to one.
    """

    def __init__(self, config: ConfigLike = None) -> None:
        self.config = _config(config)
        mem = self.config.memory
        budget_vram, budget_ram = budget_from(detect_memory(), mem.vram_gb, mem.ram_gb, mem.margin_gb)
        planner = functools.partial(loaders.plan, gpu_offload=supports_gpu_offload())
        self.pool = ModelPool(
            self.config.models, budget_vram=budget_vram, budget_ram=budget_ram, planner=planner
        )

    async def __aenter__(self) -> AsyncEngine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Load the models marked `preload`."""
        await self.pool.preload()

    # ------------------------------------------------------------ generation

    @overload
    async def chat(
        self,
        request: p.ChatCompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: Literal[False] = False,
        **kwargs: Any,
    ) -> p.ChatCompletion: ...
    @overload
    async def chat(
        self,
        request: p.ChatCompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncIterator[p.ChatCompletionChunk]: ...
    @overload
    async def chat(
        self,
        request: p.ChatCompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: bool,
        **kwargs: Any,
    ) -> p.ChatCompletion | AsyncIterator[p.ChatCompletionChunk]: ...

    async def chat(
        self, request: p.ChatCompletionRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.ChatCompletion | AsyncIterator[p.ChatCompletionChunk]:
        """A chat completion, as OpenAI's `chat.completions.create` takes and returns it.

        With `stream=True` returns an async iterator of chunks; leaving it early cancels the
        generation at once. Every problem with the request raises before anything is decoded:
        InvalidRequestError, ContextLengthExceededError, ModelNotFoundError, ModelLoadError,
        InsufficientMemoryError.
        """
        req = _request(p.ChatCompletionRequest, request, kwargs)
        gen = await self._start(req)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            return replies.stream_chat(gen, include)
        return await replies.collect_chat(gen)

    @overload
    async def complete(
        self,
        request: p.CompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: Literal[False] = False,
        **kwargs: Any,
    ) -> p.Completion: ...
    @overload
    async def complete(
        self,
        request: p.CompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncIterator[p.Completion]: ...
    @overload
    async def complete(
        self,
        request: p.CompletionRequest | Mapping[str, Any] | None = None,
        /,
        *,
        stream: bool,
        **kwargs: Any,
    ) -> p.Completion | AsyncIterator[p.Completion]: ...

    async def complete(
        self, request: p.CompletionRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.Completion | AsyncIterator[p.Completion]:
        """A legacy text completion (`completions.create`); streaming as for `chat`."""
        req = _request(p.CompletionRequest, request, kwargs)
        gen = await self._start(req)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            return replies.stream_completion(gen, include)
        return await replies.collect_completion(gen)

    async def _start(self, req: p.ChatCompletionRequest | p.CompletionRequest) -> generation.Generation:
        lease = await self._acquire(req.model, ("llm",), "a chat/completion model")
        try:
            return await generation.start(lease, req)
        except BaseException:
            lease.release()
            raise

    async def _acquire(self, model: str, kinds: tuple[str, ...], role: str) -> Lease:
        """Lease `model`, refusing before any load when it is of the wrong type."""
        kind = self.pool.kind(model)
        if kind not in kinds:
            raise InvalidRequestError(f"model '{model}' is a {kind} model, not {role}", param="model")
        return await self.pool.acquire(model)

    # ------------------------------------------------------------ embeddings, reranking, speech

    async def embed(
        self, request: p.EmbeddingRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.EmbeddingList:
        """Embeddings as OpenAI's `embeddings.create` returns them (normalised, float or base64)."""
        req = _request(p.EmbeddingRequest, request, kwargs)
        lease = await self._acquire(req.model, ("embedding",), "an embedding model")
        try:
            return await embeddings.embed(lease, req)
        finally:
            lease.release()

    async def rerank(
        self, request: p.RerankRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.RerankResponse:
        """Documents ranked by relevance to the query; an embedding model ranks by cosine similarity."""
        req = _request(p.RerankRequest, request, kwargs)
        lease = await self._acquire(req.model, ("reranker", "embedding"), "a reranker or embedding model")
        try:
            return await embeddings.rerank(lease, req)
        finally:
            lease.release()

    async def transcribe(
        self, file: bytes, /, *, task: Literal["transcribe", "translate"] = "transcribe", **options: Any
    ) -> tuple[str, str]:
        """(body, media type) of a transcription, or with task="translate" an English translation."""
        opts = _request(a.TranscriptionOptions, None, options)
        lease = await self._acquire(opts.model, ("stt",), "a speech-to-text model")
        try:
            return await speech.transcribe(lease, file, opts, task)
        finally:
            lease.release()

    async def speak_stream(
        self, request: a.SpeechRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> tuple[AsyncIterator[bytes], str]:
        """(audio bytes as synthesised, media type). Leaving the iterator early stops synthesis."""
        req = _request(a.SpeechRequest, request, kwargs)
        media = speech.media_type(req.response_format)
        lease = await self._acquire(self._voice(req), ("tts",), "a text-to-speech voice")

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in speech.speak(lease, req):
                    yield chunk
            finally:
                lease.release()

        return stream(), media

    async def speak(
        self, request: a.SpeechRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> bytes:
        """The whole audio file of `input` spoken by `voice`."""
        chunks, _media = await self.speak_stream(request, **kwargs)
        return b"".join([c async for c in chunks])

    def _voice(self, req: a.SpeechRequest) -> str:
        """The voice's model: named by `voice`, else by `model`, else the first voice for an OpenAI name."""
        voices = self.pool.of_kind("tts")
        names = {n: s.name for s in voices for n in (s.name, *s.aliases)}
        for wanted in (req.voice, req.model):
            if wanted in names:
                return names[wanted]
        if req.voice in speech.OPENAI_VOICES and voices:
            return voices[0].name
        listed = ", ".join(names) or "(no voices are configured)"
        raise InvalidRequestError(f"voice '{req.voice}' is not available; voices: {listed}", param="voice")

    # ------------------------------------------------------------ models

    def models(self) -> p.ModelList:
        """Every configured model with its type, aliases, state and memory estimate."""
        return p.ModelList(data=[_model_info(s) for s in self.pool.status()])

    def model(self, name: str) -> p.ModelInfo:
        """One model by name or alias; raises ModelNotFoundError."""
        key = self.pool.resolve(name)
        return next(_model_info(s) for s in self.pool.status() if s.name == key)

    async def load(self, name: str) -> None:
        await self.pool.load(name)

    async def unload(self, name: str) -> bool:
        return await self.pool.unload(name)

    async def unload_all(self) -> list[str]:
        return await self.pool.unload_all()

    async def reconfigure(self, config: ConfigLike) -> dict[str, list[str]]:
        """Adopt a new configuration while serving (a soft restart): models whose definition did
        not change keep running; changed and removed ones unload once their requests finish.
        Returns the model names by outcome (added, changed, removed, kept)."""
        new = _config(config)
        mem = new.memory
        budget_vram, budget_ram = budget_from(detect_memory(), mem.vram_gb, mem.ram_gb, mem.margin_gb)
        report = await asyncio.to_thread(
            self.pool.reconfigure, new.models, budget_vram=budget_vram, budget_ram=budget_ram
        )
        self.config = new
        return report

    async def close(self) -> None:
        """Unload every model and free native memory; the engine cannot be used afterwards."""
        await asyncio.to_thread(self.pool.close)


_CREATED = 1_700_000_000  # a fixed "created" stamp: config models have no creation time


def _model_info(s: ModelStatus) -> p.ModelInfo:
    memory = (
        p.MemoryInfo(vram_bytes=s.estimate.vram_bytes, ram_bytes=s.estimate.ram_bytes) if s.estimate else None
    )
    return p.ModelInfo(
        id=s.name,
        created=_CREATED,
        type=s.kind,
        aliases=list(s.aliases),
        state=s.state,  # type: ignore[arg-type]
        error=s.error,
        memory=memory,
        in_flight=s.in_flight,
        prompt_cache=p.PromptCacheInfo(**dataclasses.asdict(s.prompt_cache)) if s.prompt_cache else None,
    )


class _Portal:
    """A private event loop on a daemon thread, for the sync face."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="claracore-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(_await(coro), self.loop).result()

    def iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from this thread; closing the iterator early cancels it."""
        try:
            while True:
                try:
                    yield self.call(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self.call(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class Engine:
    """The synchronous face of `AsyncEngine` (available as `.aio`), for scripts and notebooks."""

    def __init__(self, config: ConfigLike = None) -> None:
        self._portal = _Portal()
        self.aio: AsyncEngine = self._portal.call(_make(config))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def chat(
        self, request: p.ChatCompletionRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.ChatCompletion | Iterator[p.ChatCompletionChunk]:
        """As `AsyncEngine.chat`; with `stream=True` returns a plain iterator of chunks."""
        result = self._portal.call(self.aio.chat(request, **kwargs))
        return result if isinstance(result, p.ChatCompletion) else self._portal.iterate(result)

    def complete(
        self, request: p.CompletionRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.Completion | Iterator[p.Completion]:
        """As `AsyncEngine.complete`; with `stream=True` returns a plain iterator of chunks."""
        result = self._portal.call(self.aio.complete(request, **kwargs))
        return result if isinstance(result, p.Completion) else self._portal.iterate(result)

    def embed(
        self, request: p.EmbeddingRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.EmbeddingList:
        return self._portal.call(self.aio.embed(request, **kwargs))

    def rerank(
        self, request: p.RerankRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.RerankResponse:
        return self._portal.call(self.aio.rerank(request, **kwargs))

    def transcribe(self, file: bytes, /, **options: Any) -> tuple[str, str]:
        return self._portal.call(self.aio.transcribe(file, **options))

    def speak(self, request: a.SpeechRequest | Mapping[str, Any] | None = None, /, **kwargs: Any) -> bytes:
        return self._portal.call(self.aio.speak(request, **kwargs))

    def models(self) -> p.ModelList:
        return self.aio.models()

    def load(self, name: str) -> None:
        self._portal.call(self.aio.load(name))

    def unload(self, name: str) -> bool:
        return self._portal.call(self.aio.unload(name))

    def unload_all(self) -> list[str]:
        return self._portal.call(self.aio.unload_all())

    def close(self) -> None:
        self._portal.call(self.aio.close())
        self._portal.stop()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _make(config: ConfigLike) -> AsyncEngine:
    engine = AsyncEngine(config)
    await engine.start()
    return engine
