"""Chat and completion requests turned into runtime jobs, and the events those jobs send back.

This is the "serving" layer between the engine facade and the LLM runtime: it validates what
pydantic cannot (message contents, logit_bias keys), renders and tokenizes prompts, picks the
sampling defaults (request, then config, then llama.cpp's) and submits the jobs. Turning the
events into OpenAI responses or chunks is `claracore.serving.replies`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from claracore.config import MediaLimits, ModelSpec
from claracore.errors import ClaraCoreError, InvalidRequestError
from claracore.inputs import check_token_ids
from claracore.monitor.records import RequestRecord
from claracore.pool.pool import Lease
from claracore.protocol import openai as p
from claracore.runtime.jobs import Delta, Event, Failed, Finished, Job, PromptLogprobs
from claracore.runtime.llm import LlmRuntime
from claracore.runtime.multimodal import MARKER
from claracore.runtime.sampling import SamplingParams, grammar_for
from claracore.serving import media
from claracore.serving.reasoning import Markers, opened_by, template_variables
from claracore.serving.tool_calls import declared_names

_DEFAULTS = SamplingParams()


@dataclass
class _Prepared:
    """Jobs ready to submit, one per prompt, and the bookkeeping to answer with."""

    id: str
    created: int
    model: str
    jobs: list[Job]
    n: int
    prompt_texts: list[str]
    tool_names: frozenset[str] = frozenset()  # tools the answer may call (see claracore.serving.tool_calls)
    split_reasoning: bool = False  # chat with reasoning_format other than "none"
    opened: Markers | None = None  # the reasoning block the prompt left open (claracore.serving.reasoning)


class _Channel:
    """Events from the worker thread into the caller's event loop, tagged with the prompt index.

    With a `record`, the worker's side stamps the first event's time and each choice's end
    (one attribute test per token), since the loop may read several tokens at once.
    """

    def __init__(self, record: RequestRecord | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self.record = record

    def emitter(self, prompt_index: int) -> Callable[[Event], None]:
        put, call, record = self.queue.put_nowait, self.loop.call_soon_threadsafe, self.record
        if record is None:

            def emit(ev: Event) -> None:
                call(put, (prompt_index, ev))

            return emit

        def emit_timed(ev: Event) -> None:
            if record.first_token is None and not isinstance(ev, Failed):
                record.first_token = time.perf_counter()
            if isinstance(ev, Delta):
                record.streamed += 1
            elif isinstance(ev, Finished):
                record.last_token = time.perf_counter()
            call(put, (prompt_index, ev))

        return emit_timed


# ---------------------------------------------------------------- preparing requests


def _content_text(message: p.ChatMessage, i: int) -> str:
    """The message's text; each image or audio part becomes the projector's marker (they were
    checked against the model before this, see `start`)."""
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if part.type in media.KINDS:
            texts.append(MARKER)
            continue
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"messages[{i}].content[{j}] is of type '{part.type}'; this model accepts text only",
                param=f"messages.{i}.content.{j}.type",
            )
        texts.append(part.text)
    return "".join(texts)


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as chat templates expect it: OpenAI sends `arguments` as JSON text, while the
    templates (Qwen, Llama 3.1, Hermes) write it out with `tojson`, which would quote it again."""
    function = call.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        try:
            arguments = json.loads(function["arguments"])
        except ValueError:
            return call
        if isinstance(arguments, dict):
            return {**call, "function": {**function, "arguments": arguments}}
    return call


def render_chat(runtime: LlmRuntime, request: p.ChatCompletionRequest, spec: ModelSpec) -> str:
    """The prompt text from the model's chat template."""
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(request.messages):
        msg: dict[str, Any] = {
            "role": "system" if m.role == "developer" else m.role,
            "content": _content_text(m, i),
        }
        if m.name:
            msg["name"] = m.name
        if m.tool_calls:
            msg["tool_calls"] = [_template_call(call) for call in m.tool_calls]
        if m.tool_call_id:
            msg["tool_call_id"] = m.tool_call_id
        thought = (m.model_extra or {}).get("reasoning_content")
        if isinstance(thought, str) and m.role == "assistant":
            msg["reasoning_content"] = thought  # templates that think (Qwen3) decide what to keep
        messages.append(msg)
    tools = None if request.tool_choice == "none" else request.tools
    variables = template_variables(
        spec.chat_template_kwargs, request.chat_template_kwargs, request.reasoning_effort
    )
    return runtime.template.render(messages, tools=tools, variables=variables)


def _sampling(
    spec: ModelSpec, request: p.ChatCompletionRequest | p.CompletionRequest
) -> list[SamplingParams]:
    def pick(value: Any, configured: Any, default: Any) -> Any:
        return value if value is not None else configured if configured is not None else default

    bias: dict[int, float] = {}
    for key, value in (request.logit_bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequestError(
                f"logit_bias key {key!r} is not a token id", param="logit_bias"
            ) from None
        if not -100.0 <= value <= 100.0:  # OpenAI's range; NaN fails it too
            raise InvalidRequestError(
                f"logit_bias value {value} for token {token} is outside -100..100", param="logit_bias"
            )
        bias[token] = float(value)
    grammar = grammar_for(request.response_format)
    base = SamplingParams(
        temperature=pick(request.temperature, spec.temperature, _DEFAULTS.temperature),
        top_k=pick(request.top_k, spec.top_k, _DEFAULTS.top_k),
        top_p=pick(request.top_p, spec.top_p, _DEFAULTS.top_p),
        min_p=pick(request.min_p, spec.min_p, _DEFAULTS.min_p),
        repeat_penalty=pick(request.repeat_penalty, spec.repeat_penalty, _DEFAULTS.repeat_penalty),
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        grammar=grammar,
        logit_bias=bias,
    )
    # Each choice gets its own seed, so n choices differ but the same seed repeats the set.
    return [replace(base, seed=None if request.seed is None else request.seed + i) for i in range(request.n)]


def _lora(
    runtime: LlmRuntime, request: p.ChatCompletionRequest | p.CompletionRequest
) -> tuple[float, ...] | None:
    """The adapter scales a request asks for, or None for the model's own."""
    if request.lora is None:
        return None
    return runtime.lora_scales({x.id: x.scale for x in request.lora})


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise InvalidRequestError("stop takes at most 4 sequences", param="stop")
    return tuple(s for s in stops if s)


def _max_tokens(spec: ModelSpec, *values: int | None, default: int = 2**31 - 1) -> int:
    """The first value given, else the config's, else `default` (the runtime caps it at what
    the context leaves)."""
    for v in values:
        if v is not None:
            return v
    return spec.max_tokens or default


def prepare_chat(
    lease: Lease,
    request: p.ChatCompletionRequest,
    emit: Callable[[int], Callable[[Event], None]],
    loaded: list[media.Media] | None = None,
) -> _Prepared:
    runtime = llm_of(lease)
    text = render_chat(runtime, request, lease.spec)
    tokens_media = None
    if loaded and runtime.projector is not None:
        prompt, tokens_media = runtime.projector.tokenize(text, [(x.kind, x.data, x.field) for x in loaded])
    else:
        prompt = runtime.tokenize(text)
    job = Job(
        media=tokens_media,
        lora=_lora(runtime, request),
        prompt=prompt,
        params=_sampling(lease.spec, request),
        max_tokens=_max_tokens(lease.spec, request.max_completion_tokens, request.max_tokens),
        emit=emit(0),
        stop=_stops(request.stop),
        logprobs=request.logprobs,
        top_logprobs=request.top_logprobs or 0,
    )
    names = frozenset() if request.tool_choice == "none" else declared_names(request.tools)
    split = (request.reasoning_format or lease.spec.reasoning_format) != "none"
    return _Prepared(
        f"chatcmpl-{uuid.uuid4().hex}",
        int(time.time()),
        request.model,
        [job],
        request.n,
        [""],
        names,
        split_reasoning=split,
        opened=opened_by(text) if split else None,
    )


def prepare_completion(
    lease: Lease, request: p.CompletionRequest, emit: Callable[[int], Callable[[Event], None]]
) -> _Prepared:
    runtime = llm_of(lease)
    raw = request.prompt
    items: list[str | list[int]]
    if isinstance(raw, str):
        items = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [[int(x) for x in raw]]  # type: ignore[arg-type]
    elif raw and all(isinstance(x, str | list) for x in raw):
        items = list(raw)  # type: ignore[arg-type]
    else:
        raise InvalidRequestError(
            "prompt must be a string, a list of strings or token arrays", param="prompt"
        )
    for i, x in enumerate(items):
        if not isinstance(x, str):  # before echo or infill hands the ids to llama.cpp
            check_token_ids(x, runtime.n_vocab, "prompt" if len(items) == 1 else f"prompt.{i}")
    prompts = [runtime.tokenize(x) if isinstance(x, str) else x for x in items]
    if request.suffix:
        prompts = [_infill(runtime, lease.spec.name, x, request.suffix) for x in items]
    if len(prompts) * request.n > runtime.parallel * 4:
        raise InvalidRequestError("too many prompts × n for one request", param="prompt")
    sampling = _sampling(lease.spec, request)
    max_tokens = _max_tokens(lease.spec, request.max_tokens, default=16)  # OpenAI's default here
    jobs = [
        Job(
            prompt=tokens,
            params=sampling,
            max_tokens=max_tokens,
            emit=emit(i),
            stop=_stops(request.stop),
            logprobs=request.logprobs is not None,
            top_logprobs=request.logprobs or 0,
            prompt_logprobs=request.echo and request.logprobs is not None,
            lora=_lora(runtime, request),
        )
        for i, tokens in enumerate(prompts)
    ]
    # echo repeats the caller's own text, or the decoded tokens
    echoed = [
        (x if isinstance(x, str) else runtime.detokenize(t)) if request.echo else ""
        for x, t in zip(items, prompts, strict=True)
    ]
    return _Prepared(f"cmpl-{uuid.uuid4().hex}", int(time.time()), request.model, jobs, request.n, echoed)


def _infill(runtime: LlmRuntime, model: str, prefix: str | list[int], suffix: str) -> list[int]:
    """`suffix` makes a completion an insertion: the model writes what goes in between."""
    head = runtime.tokenize(prefix, add_special=False) if isinstance(prefix, str) else prefix
    prompt = runtime.fill_in_middle(head, runtime.tokenize(suffix, add_special=False))
    if prompt is None:
        raise InvalidRequestError(
            f"model '{model}' has no fill-in-the-middle tokens, so it cannot complete with a suffix; "
            "use a code model that has them, or leave suffix out",
            param="suffix",
        )
    return prompt


def llm_of(lease: Lease) -> LlmRuntime:
    """The lease's runtime, or a 400 naming the model when it is not a text generator."""
    runtime = lease.runtime
    if not isinstance(runtime, LlmRuntime):
        raise InvalidRequestError(
            f"model '{lease.spec.name}' is a {runtime.kind} model, not a chat/completion model", param="model"
        )
    return runtime


# ---------------------------------------------------------------- running them


#: Told once when a generation is over, however it ended (the record says how).
OnEnd = Callable[[RequestRecord], None]


class Generation:
    """A submitted request: iterate for events, or `collect()`; `aclose()` cancels and releases.

    If the caller drops it unread, a finalizer still cancels the jobs and releases the lease.
    With a `record`, the token counts are written into it as choices finish (the channel stamps
    the times; nothing is published from the decode loop), and `on_end(record)` runs when the
    generation is over.
    """

    def __init__(
        self,
        lease: Lease,
        prepared: _Prepared,
        channel: _Channel,
        record: RequestRecord | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        self.lease = lease
        self.prepared = prepared
        self._channel = channel
        self._record = record
        self._open = len(prepared.jobs) * prepared.n
        runtime = llm_of(lease)
        submitted: list[Job] = []
        try:
            for job in prepared.jobs:
                runtime.submit(job)
                submitted.append(job)
        except BaseException:
            for job in submitted:
                runtime.cancel(job)
            raise
        self._finalizer = weakref.finalize(
            self, _abandon, runtime, list(prepared.jobs), lease, record, on_end
        )

    def __aiter__(self) -> AsyncIterator[tuple[int, Delta | PromptLogprobs | Finished]]:
        return self._events()

    async def _events(self) -> AsyncIterator[tuple[int, Delta | PromptLogprobs | Finished]]:
        """(choice index over all prompts, event) until every choice has finished."""
        record = self._record
        try:
            while self._open:
                prompt_index, ev = await self._channel.queue.get()
                if isinstance(ev, Failed):
                    err = ev.error
                    failure = (
                        err
                        if isinstance(err, ClaraCoreError)
                        else ClaraCoreError(f"generation failed: {err}")
                    )
                    if record is not None:
                        record.error_code = failure.code
                    raise failure
                if isinstance(ev, Finished):
                    self._open -= 1
                    if record is not None:
                        _count(record, ev)
                yield prompt_index * self.prepared.n + ev.index, ev
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._finalizer()


def _count(record: RequestRecord, ev: Finished) -> None:
    """Usage as the answer reports it: the prompt once per job, completions of every choice."""
    record.completion_tokens += ev.completion_tokens
    if ev.index == 0:
        record.prompt_tokens += ev.prompt_tokens
        record.cached_tokens += ev.cached_tokens


def _abandon(
    runtime: LlmRuntime, jobs: list[Job], lease: Lease, record: RequestRecord | None, on_end: OnEnd | None
) -> None:
    cancelled = False
    for job in jobs:
        if job.remaining:
            runtime.cancel(job)
            cancelled = True
    lease.release()
    if record is not None:
        if cancelled:
            # Unfinished choices never reported their count: what they emitted is the best one.
            record.completion_tokens = max(record.completion_tokens, record.streamed)
            record.last_token = time.perf_counter()
            if record.error_code is None:
                record.error_code = "CANCELLED"  # the caller stopped reading before the end
        if on_end is not None:
            on_end(record)


async def start(
    lease: Lease,
    request: p.ChatCompletionRequest | p.CompletionRequest,
    record: RequestRecord | None = None,
    on_end: OnEnd | None = None,
    limits: MediaLimits | None = None,
) -> Generation:
    """Prepare and submit; raises InvalidRequestError / ContextLengthExceededError before any decode.

    `limits` bound the images and audio a chat may bring (the config's `media:`).

    `record` and `on_end` follow the request (see `Generation`); `on_end` is not called when
    this raises, since the caller sees the error.
    """
    channel = _Channel(record)
    if isinstance(request, p.ChatCompletionRequest):
        parts = media.media_parts(request.messages)
        projector = llm_of(lease).projector
        media.check_inputs(parts, lease.spec.name, projector.inputs if projector else [])
        loaded = await media.load(parts, limits or MediaLimits())
        prepared = prepare_chat(lease, request, channel.emitter, loaded)
    else:
        prepared = prepare_completion(lease, request, channel.emitter)
    return Generation(lease, prepared, channel, record, on_end)
