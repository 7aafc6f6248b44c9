"""The engine: the one facade that the CLI, the HTTP server and Python callers use.

`AsyncEngine` is the core; it is loop-agnostic (the pool and runtimes talk to asyncio only
through futures and `call_soon_threadsafe`), so it works from any event loop. `Engine` is the
thin sync face: it runs an `AsyncEngine` on a private loop thread rather than copying methods.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from claracore.config import Config, load_config, parse_config
from claracore.errors import InvalidRequestError
from claracore.events import EventBus
from claracore.hardware.memory import budget_from, detect_memory
from claracore.monitor import Monitor
from claracore.pool import loaders
from claracore.pool.pool import Lease, ModelPool, ModelStatus
from claracore.protocol import audio as a
from claracore.protocol import openai as p
from claracore.protocol.validation import parse
from claracore.runtime.native import supports_gpu_offload
from claracore.runtime.whisper import Transcription
from claracore.serving import embeddings, generation, replies, speech

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


class AsyncEngine:
    """Serves the configured models; every method is safe to call concurrently.

    Create from a `Config`, a dict shaped like config.yaml, or a path to one.
    """

    def __init__(self, config: ConfigLike = None) -> None:
        self.config = _config(config)
        # What the engine and the services around it publish (model states, requests, logs,
        # downloads, setup): one bus per engine, subscribed to by GET /api/events and metrics.
        self.events = EventBus()
        mem = self.config.memory
        budget_vram, budget_ram = budget_from(detect_memory(), mem.vram_gb, mem.ram_gb, mem.margin_gb)
        recipe_for = functools.partial(
            loaders.recipe, gpu_offload=supports_gpu_offload(), workers=tuple(self.config.workers)
        )
        self.pool = ModelPool(
            self.config.models,
            budget_vram=budget_vram,
            budget_ram=budget_ram,
            recipe_for=recipe_for,
            events=self.events,
        )
        # Figures, Prometheus metrics, logs on the bus and periodic "metrics" events, all from it.
        self.monitor = Monitor(
            self.events, self.pool, metrics_interval=self.config.monitoring.metrics_interval
        )

    async def __aenter__(self) -> AsyncEngine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start publishing logs and metrics on `events`, and load the models marked `preload`."""
        self.monitor.start()
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
        req = parse(p.ChatCompletionRequest, request, kwargs)
        gen = await self._start(req, "chat")
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
        req = parse(p.CompletionRequest, request, kwargs)
        gen = await self._start(req, "completions")
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            return replies.stream_completion(gen, include)
        return await replies.collect_completion(gen)

    async def _start(
        self, req: p.ChatCompletionRequest | p.CompletionRequest, route: str
    ) -> generation.Generation:
        """Submit; the request's record is finished when the generation ends (or here, if it fails)."""
        record = self.monitor.track(route, req.model, stream=bool(req.stream))
        try:
            lease = await self._acquire(req.model, ("llm",), "a chat/completion model")
            try:
                return await generation.start(lease, req, record, self.monitor.finish, self.config.media)
            except BaseException:
                lease.release()
                raise
        except BaseException as exc:
            self.monitor.finish(record, exc)
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
        req = parse(p.EmbeddingRequest, request, kwargs)
        async with self.monitor.tracked("embeddings", req.model) as record:
            lease = await self._acquire(req.model, ("embedding",), "an embedding model")
            try:
                result = await embeddings.embed(lease, req)
            finally:
                lease.release()
            record.prompt_tokens = result.usage.prompt_tokens
            return result

    async def rerank(
        self, request: p.RerankRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> p.RerankResponse:
        """Documents ranked by relevance to the query; an embedding model ranks by cosine similarity."""
        req = parse(p.RerankRequest, request, kwargs)
        async with self.monitor.tracked("rerank", req.model):
            lease = await self._acquire(req.model, ("reranker", "embedding"), "a reranker or embedding model")
            try:
                return await embeddings.rerank(lease, req)
            finally:
                lease.release()

    async def transcribe(
        self,
        file: bytes,
        options: a.TranscriptionOptions | Mapping[str, Any] | None = None,
        /,
        *,
        task: Literal["transcribe", "translate"] = "transcribe",
        **kwargs: Any,
    ) -> Transcription:
        """The transcription of `file` (any audio container), or with task="translate" its English
        translation: text, language, duration and timed segments (and words, when asked for).

        `serving.transcripts.format_transcription` writes it as json, text, srt, vtt or verbose_json.
        """
        opts = parse(a.TranscriptionOptions, options, kwargs)
        async with self.monitor.tracked(task, opts.model):
            lease = await self._acquire(opts.model, ("stt",), "a speech-to-text model")
            try:
                return await speech.transcribe(lease, file, opts, task)
            finally:
                lease.release()

    async def speak_stream(
        self, request: a.SpeechRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> tuple[AsyncIterator[bytes], str]:
        """(audio bytes as synthesised, media type). Leaving the iterator early stops synthesis."""
        req = parse(a.SpeechRequest, request, kwargs)
        media = speech.media_type(req.response_format)
        record = self.monitor.track("speech", req.model, stream=True)
        try:
            voice = self._voice(req)
            self.monitor.name(record, voice)
            lease = await self._acquire(voice, ("tts",), "a text-to-speech voice")
        except BaseException as exc:
            self.monitor.finish(record, exc)
            raise
        chunks = speech.speak(lease, req)
        try:  # the first piece before answering, so a failure is an error status, not a cut stream
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        except BaseException as exc:
            await chunks.aclose()
            lease.release()
            self.monitor.finish(record, exc)
            raise

        async def stream() -> AsyncGenerator[bytes, None]:
            error: BaseException | None = None
            try:
                if first:
                    yield first
                async for chunk in chunks:
                    yield chunk
            except BaseException as exc:
                error = exc
                raise
            finally:
                await chunks.aclose()
                lease.release()
                self.monitor.finish(record, error)

        return stream(), media

    async def speak(
        self, request: a.SpeechRequest | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> bytes:
        """The whole audio file of `input` spoken by `voice`."""
        chunks, _media = await self.speak_stream(request, **kwargs)
        return b"".join([c async for c in chunks])

    def _voice(self, req: a.SpeechRequest) -> str:
        """The voice model that speaks `req` (rules: `serving.speech.choose_voice`)."""
        return speech.choose_voice(req, self.pool.of_kind("tts"), self.pool.kind)

    # ------------------------------------------------------------ models

    def models(self) -> p.ModelList:
        """Every configured model (type, aliases, state, memory estimate, file and load settings)
        and the pool's budget."""
        budget = p.MemoryInfo(vram_bytes=self.pool.budget_vram, ram_bytes=self.pool.budget_ram)
        return p.ModelList(data=[_model_info(s) for s in self.pool.status()], budget=budget)

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
        self.events.publish("config", {"action": "applied", "models": report})
        return report

    async def close(self) -> None:
        """Unload every model and free native memory; the engine cannot be used afterwards."""
        await asyncio.to_thread(self.pool.close)
        self.monitor.close()


_CREATED = 1_700_000_000  # a fixed "created" stamp: config models have no creation time


def _model_info(s: ModelStatus) -> p.ModelInfo:
    e = s.estimate
    memory = None
    if e is not None:
        memory = p.MemoryInfo(vram_bytes=e.vram_bytes, ram_bytes=e.ram_bytes, remote_bytes=e.remote_bytes)
    return p.ModelInfo(
        id=s.name,
        created=_CREATED,
        type=s.kind,
        aliases=list(s.aliases),
        state=s.state,  # type: ignore[arg-type]
        error=s.error,
        memory=memory,
        in_flight=s.in_flight,
        prompt_cache=p.PromptCacheInfo(**asdict(s.prompt_cache)) if s.prompt_cache else None,
        **(asdict(s.facts) if s.facts else {}),
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

    def transcribe(
        self, file: bytes, options: a.TranscriptionOptions | Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Transcription:
        return self._portal.call(self.aio.transcribe(file, options, **kwargs))

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
