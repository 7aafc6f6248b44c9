"""Runtime events assembled into OpenAI's shapes: whole responses, stream chunks, usage, logprobs.

Kept apart from `claracore.serving.generation` so the wire format has one owner: preparing a request
never needs to know how its answer is spelt, and a new response shape touches only this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from claracore.protocol import openai as p
from claracore.runtime.jobs import Delta, Finished, PromptLogprobs
from claracore.runtime.llm import LlmRuntime
from claracore.runtime.sampling import TokenLogprob
from claracore.serving.generation import Generation, llm_of
from claracore.serving.reasoning import ReasoningSplit, split
from claracore.serving.tool_calls import CallWatch, ToolCall, parse


def usage(
    prompt_tokens: int, completion_tokens: int, cached: int, drafts: tuple[int, int] = (0, 0)
) -> p.Usage:
    """Usage; `drafts` (accepted, rejected) shows only when speculative decoding drafted."""
    details = None
    if any(drafts):
        details = {"accepted_prediction_tokens": drafts[0], "rejected_prediction_tokens": drafts[1]}
    return p.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details={"cached_tokens": cached},
        completion_tokens_details=details,
    )


def chat_logprobs(runtime: LlmRuntime, items: tuple[TokenLogprob, ...]) -> p.ChoiceLogprobs:
    def entry(token: int, logprob: float) -> p.TopLogprob:
        raw = runtime.piece(token)
        return p.TopLogprob(token=raw.decode("utf-8", errors="replace"), logprob=logprob, bytes=list(raw))

    return p.ChoiceLogprobs(
        content=[
            p.TokenLogprob(
                **entry(lp.token_id, lp.logprob).model_dump(), top_logprobs=[entry(t, v) for t, v in lp.top]
            )
            for lp in items
        ]
    )


def completion_logprobs(
    runtime: LlmRuntime, items: tuple[TokenLogprob, ...], offset: int
) -> p.CompletionLogprobs:
    out = p.CompletionLogprobs()
    for lp in items:
        text = runtime.token_text(lp.token_id)
        out.tokens.append(text)
        out.token_logprobs.append(lp.logprob)
        out.top_logprobs.append({runtime.token_text(t): v for t, v in lp.top} if lp.top else None)
        out.text_offset.append(offset)
        offset += len(text)
    return out


def prompt_logprobs(
    runtime: LlmRuntime, ev: PromptLogprobs, tail: p.CompletionLogprobs | None
) -> p.CompletionLogprobs:
    """The echoed prompt's entries, then `tail` (the generated tokens').

    The first prompt token has no context, so its score is null, as in OpenAI's API; offsets
    count from the start of the echoed prompt.
    """
    first = runtime.token_text(ev.first_token)
    head = completion_logprobs(runtime, ev.items, len(first))
    head.tokens.insert(0, first)
    head.token_logprobs.insert(0, None)
    head.top_logprobs.insert(0, None)
    head.text_offset.insert(0, 0)
    if tail is not None:
        head.tokens += tail.tokens
        head.token_logprobs += tail.token_logprobs
        head.top_logprobs += tail.top_logprobs
        head.text_offset += tail.text_offset
    return head


class _Totals:
    def __init__(self) -> None:
        self.prompt = self.completion = self.cached = self.accepted = self.rejected = 0

    def add(self, ev: Finished) -> None:
        self.completion += ev.completion_tokens
        self.accepted += ev.accepted_draft
        self.rejected += ev.rejected_draft
        if ev.index == 0:  # the prompt is shared by the n choices of one job
            self.prompt += ev.prompt_tokens
            self.cached += ev.cached_tokens

    def usage(self) -> p.Usage:
        return usage(self.prompt, self.completion, self.cached, (self.accepted, self.rejected))


@dataclass
class _Collected:
    """Every choice's whole text, token logprobs and finish reason, and the usage totals."""

    texts: list[str]
    logprobs: list[list[TokenLogprob]]
    reasons: list[Any]
    totals: _Totals
    prompts: list[PromptLogprobs | None]


async def _collect(gen: Generation) -> _Collected:
    prep = gen.prepared
    count = len(prep.jobs) * prep.n
    out = _Collected(
        [prep.prompt_texts[i // prep.n] for i in range(count)],
        [[] for _ in range(count)],
        [None] * count,
        _Totals(),
        [None] * count,
    )
    async for index, ev in gen:
        if isinstance(ev, Delta):
            out.texts[index] += ev.text
            out.logprobs[index].extend(ev.logprobs)
        elif isinstance(ev, PromptLogprobs):
            out.prompts[index] = ev
        else:
            out.reasons[index] = ev.reason
            out.totals.add(ev)
    return out


async def collect_chat(gen: Generation) -> p.ChatCompletion:
    runtime, prep = llm_of(gen.lease), gen.prepared
    got = await _collect(gen)
    want_lp = prep.jobs[0].logprobs
    choices = []
    for i in range(prep.n):
        reasoning, answer = split(got.texts[i], prep.opened) if prep.split_reasoning else (None, got.texts[i])
        content, calls = parse(answer, prep.tool_names)
        message = p.AssistantMessage(
            content=content, reasoning_content=reasoning, tool_calls=_wire(calls) if calls else None
        )
        choices.append(
            p.ChatChoice(
                index=i,
                message=message,
                finish_reason="tool_calls" if calls and got.reasons[i] == "stop" else got.reasons[i],
                logprobs=chat_logprobs(runtime, tuple(got.logprobs[i])) if want_lp else None,
            )
        )
    return p.ChatCompletion(
        id=prep.id, created=prep.created, model=prep.model, choices=choices, usage=got.totals.usage()
    )


async def stream_chat(gen: Generation, include_usage: bool) -> AsyncIterator[p.ChatCompletionChunk]:
    """Chunks as OpenAI sends them: the role in each choice's first delta, one stable id."""
    runtime, prep = llm_of(gen.lease), gen.prepared
    totals = _Totals()

    def chunk(choices: list[p.ChunkChoice], usage: p.Usage | None = None) -> p.ChatCompletionChunk:
        return p.ChatCompletionChunk(
            id=prep.id, created=prep.created, model=prep.model, choices=choices, usage=usage
        )

    def content(index: int, text: str, lp: p.ChoiceLogprobs | None = None) -> p.ChatCompletionChunk:
        return chunk([p.ChunkChoice(index=index, delta=p.ChunkDelta(content=text), logprobs=lp)])

    def thought(index: int, text: str, lp: p.ChoiceLogprobs | None = None) -> p.ChatCompletionChunk:
        delta = p.ChunkDelta(reasoning_content=text)
        return chunk([p.ChunkChoice(index=index, delta=delta, logprobs=lp)])

    yield chunk(
        [p.ChunkChoice(index=i, delta=p.ChunkDelta(role="assistant", content="")) for i in range(prep.n)]
    )
    watch = [CallWatch(prep.tool_names) for _ in range(prep.n)] if prep.tool_names else None
    splits = [ReasoningSplit(prep.opened) for _ in range(prep.n)] if prep.split_reasoning else None
    try:
        async for index, ev in gen:
            if isinstance(ev, Delta):
                lp = chat_logprobs(runtime, ev.logprobs) if ev.logprobs else None
                reasoning, text = splits[index].feed(ev.text) if splits else ("", ev.text)
                text = watch[index].feed(text) if watch else text
                if reasoning:
                    yield thought(index, reasoning, lp)
                    lp = None
                if text or lp:
                    yield content(index, text, lp)
            elif isinstance(ev, Finished):
                totals.add(ev)
                reason: p.FinishReason = ev.reason  # type: ignore[assignment]
                if splits:
                    reasoning, text = splits[index].finish()
                    text = watch[index].feed(text) if watch else text
                    if reasoning:
                        yield thought(index, reasoning)
                    if text:
                        yield content(index, text)
                if watch:
                    rest, calls = watch[index].finish()
                    if rest:
                        yield content(index, rest)
                    if calls:
                        reason = "tool_calls" if ev.reason == "stop" else reason
                        wire = [
                            p.ChunkToolCall(index=k, **c.model_dump()) for k, c in enumerate(_wire(calls))
                        ]
                        yield chunk([p.ChunkChoice(index=index, delta=p.ChunkDelta(tool_calls=wire))])
                yield chunk([p.ChunkChoice(index=index, delta=p.ChunkDelta(), finish_reason=reason)])
        if include_usage:
            yield chunk([], totals.usage())
    finally:
        await gen.aclose()  # at once, not when the garbage collector gets to it


def _wire(calls: list[ToolCall]) -> list[p.ToolCall]:
    return [p.ToolCall(id=c.id, function=p.FunctionCall(name=c.name, arguments=c.arguments)) for c in calls]


async def collect_completion(gen: Generation) -> p.Completion:
    runtime, prep = llm_of(gen.lease), gen.prepared
    got = await _collect(gen)
    want_lp = prep.jobs[0].logprobs

    def logprobs(i: int) -> p.CompletionLogprobs | None:
        if not want_lp:
            return None
        generated = completion_logprobs(runtime, tuple(got.logprobs[i]), len(prep.prompt_texts[i // prep.n]))
        scored = got.prompts[i]
        return generated if scored is None else prompt_logprobs(runtime, scored, generated)

    choices = [
        p.CompletionChoice(index=i, text=text, finish_reason=got.reasons[i], logprobs=logprobs(i))
        for i, text in enumerate(got.texts)
    ]
    return p.Completion(
        id=prep.id, created=prep.created, model=prep.model, choices=choices, usage=got.totals.usage()
    )


async def stream_completion(gen: Generation, include_usage: bool) -> AsyncIterator[p.Completion]:
    runtime, prep = llm_of(gen.lease), gen.prepared
    totals = _Totals()
    offsets = [len(prep.prompt_texts[i // prep.n]) for i in range(len(prep.jobs) * prep.n)]

    def chunk(choices: list[p.CompletionChoice], usage: p.Usage | None = None) -> p.Completion:
        return p.Completion(id=prep.id, created=prep.created, model=prep.model, choices=choices, usage=usage)

    # With prompt scores, the echo waits for them so the prompt's text and scores come together.
    if any(prep.prompt_texts) and not prep.jobs[0].prompt_logprobs:
        yield chunk(
            [p.CompletionChoice(index=i, text=prep.prompt_texts[i // prep.n]) for i in range(len(offsets))]
        )
    try:
        async for index, ev in gen:
            if isinstance(ev, Delta):
                lp = completion_logprobs(runtime, ev.logprobs, offsets[index]) if ev.logprobs else None
                offsets[index] += len(ev.text)
                yield chunk([p.CompletionChoice(index=index, text=ev.text, logprobs=lp)])
            elif isinstance(ev, PromptLogprobs):
                text = prep.prompt_texts[index // prep.n]
                yield chunk(
                    [p.CompletionChoice(index=index, text=text, logprobs=prompt_logprobs(runtime, ev, None))]
                )
            else:
                totals.add(ev)
                yield chunk([p.CompletionChoice(index=index, text="", finish_reason=ev.reason)])  # type: ignore[arg-type]
        if include_usage:
            yield chunk([], totals.usage())
    finally:
        await gen.aclose()  # at once, not when the garbage collector gets to it
