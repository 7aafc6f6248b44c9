"""The client side of scripts/bench_server.py: what is sent to a running server, and what is timed.

Two workloads, both streamed through the official `openai` client:

- `streams`: N clients each ask one question at once (128 tokens each by default);
- `conversations`: several clients each hold several multi-turn conversations, more conversations
  than the server has slots, taking their turns round-robin, all behind one long system prompt.
  What a team of people (or agents) sharing one local server does; it is what a prompt cache is
  for, since a conversation rarely comes back to the slot it left.

End-of-generation tokens are banned through logit_bias, so every answer has exactly the asked
number of tokens on every server. Every prompt carries a tag unique to the measurement, so no
cache can answer the warm-up's prompt or an earlier repetition's.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from bench_engine import Run
from openai import AsyncOpenAI

QUESTIONS = [
    "Write a story about a lighthouse keeper.",
    "Explain how rain forms, step by step.",
    "Describe a busy market in the morning.",
    "Tell me about the history of bicycles.",
]

# About 150 tokens with SmolLM2's tokenizer, as the system prompt of an assistant product would be.
SYSTEM = (
    "You are Clara, a careful and friendly assistant for a small engineering team. Answer in plain "
    "English, in short paragraphs, and never invent facts: when you are not sure, say so and suggest "
    "how to find out. Prefer concrete examples to general advice. When asked for code, give a short "
    "complete example and explain the one or two lines that matter. Keep a neutral tone, do not use "
    "emoji, and do not repeat the question back. If a request is ambiguous, answer the most likely "
    "reading and mention the other one in a sentence. Dates are written as year, month, day; units "
    "are metric. The team works on a local inference server, so questions about models, memory, "
    "threads and tokens are common."
)
TOPICS = [
    "the tides", "bread dough", "bicycle gears", "solar panels", "the water cycle", "compilers",
    "coffee roasting", "railway signals", "bird migration", "glass making", "weather fronts",
    "paper maps", "bee hives", "sailing upwind", "clock escapements", "river deltas",
]  # fmt: skip
FOLLOW_UPS = ["Tell me more about that.", "Give me an example.", "What is often misunderstood about it?"]


@dataclass
class Conversations:
    """One `conversations` measurement; `cache` is the server's own report where it gives one."""

    seconds: float
    tokens: int
    first_ttfts: list[float] = field(default_factory=list)  # first turns
    later_ttfts: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server reported as not decoded again
    cache: dict[str, int] | None = None

    @property
    def tps(self) -> float:
        return self.tokens / self.seconds

    @property
    def first_ttft(self) -> float:
        return statistics.median(self.first_ttfts)

    @property
    def later_ttft(self) -> float:
        return statistics.median(self.later_ttfts)

    @property
    def reused(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class Answer:
    text: str
    chunks: int
    ttft: float
    completion_tokens: int | None
    prompt_tokens: int
    cached_tokens: int

    @property
    def tokens(self) -> int:
        """Tokens generated, as the server's usage counts them (a server may send two tokens in
        one chunk, when the first ends mid-character); the chunks when it reports no usage."""
        return self.completion_tokens if self.completion_tokens is not None else self.chunks


async def ask(
    client: AsyncOpenAI,
    model: str,
    messages: list[Any],
    tokens: int,
    bias: dict[str, int],
    *,
    temperature: float,
    seed: int | None = None,
) -> Answer:
    """One streamed chat; the time to the first content chunk is counted from the call."""
    t0 = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=tokens,
        stream=True,
        stream_options={"include_usage": True},
        logit_bias=bias,
        temperature=temperature,
        seed=seed,
    )
    parts: list[str] = []
    first = 0.0
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            if not parts:
                first = time.perf_counter() - t0
            parts.append(chunk.choices[0].delta.content)
    details = usage.prompt_tokens_details if usage is not None else None
    return Answer(
        "".join(parts),
        len(parts),
        first,
        usage.completion_tokens if usage is not None else None,
        usage.prompt_tokens if usage is not None else 0,
        (details.cached_tokens or 0) if details is not None else 0,
    )


def check(side: str, tokens: int, answer: Answer) -> None:
    if answer.chunks != tokens:
        print(f"warning: {side}: {answer.chunks} content chunks for max_tokens={tokens}", file=sys.stderr)
    if answer.completion_tokens is not None and answer.completion_tokens != answer.chunks:
        print(
            f"warning: {side}: {answer.chunks} content chunks but usage says {answer.completion_tokens}",
            file=sys.stderr,
        )


async def streams(
    side: str, base_url: str, model: str, *, clients: int, tokens: int, bias: dict[str, int], tag: str
) -> Run:
    """`clients` single questions at once, after one warm-up request."""
    client = connect(base_url)
    try:
        hello = [user(f"{tag} warm-up. Say hello.")]
        check(side, tokens, await ask(client, model, hello, tokens, bias, temperature=0.7, seed=1))
        t0 = time.perf_counter()
        questions = [[user(f"{tag}-{i}: {QUESTIONS[i % 4]}")] for i in range(clients)]
        answers = await asyncio.gather(
            *(ask(client, model, q, tokens, bias, temperature=0.7, seed=1) for q in questions)
        )
        seconds = time.perf_counter() - t0
    finally:
        await client.close()
    for answer in answers:
        check(side, tokens, answer)
    decoded = sum(a.prompt_tokens - a.cached_tokens for a in answers)
    return Run(sum(a.tokens for a in answers), seconds, [a.ttft for a in answers], decoded)


async def conversations(
    side: str,
    base_url: str,
    model: str,
    *,
    clients: int,
    per_client: int,
    turns: int,
    tokens: int,
    bias: dict[str, int],
    tag: str,
) -> Conversations:
    """Each client holds `per_client` conversations and takes their turns round-robin, waiting for
    each answer before the next question; greedy, so every server holds the same conversations.

    """
    system = {"role": "system", "content": f"Session {tag}. {SYSTEM}"}
    result = Conversations(0.0, 0)

    async def one_client(c: int) -> None:
        chats = [[system] for _ in range(per_client)]
        async with connect(base_url) as client:
            for turn in range(turns):
                for k, chat in enumerate(chats):
                    topic = TOPICS[(c * per_client + k) % len(TOPICS)]
                    question = (
                        f"Explain {topic} to me." if turn == 0 else FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]
                    )
                    chat.append(user(question))
                    answer = await ask(client, model, chat, tokens, bias, temperature=0)
                    check(side, tokens, answer)
                    chat.append({"role": "assistant", "content": answer.text})
                    (result.first_ttfts if turn == 0 else result.later_ttfts).append(answer.ttft)
                    result.tokens += answer.tokens
                    result.prompt_tokens += answer.prompt_tokens
                    result.cached_tokens += answer.cached_tokens

    async with connect(base_url) as client:
        warm = [{"role": "system", "content": f"Warm-up {tag}. Be brief."}, user("Say hello.")]
        await ask(client, model, warm, tokens, bias, temperature=0)
    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    result.seconds = time.perf_counter() - t0
    result.cache = prompt_cache_report(base_url, model)
    return result


def connect(base_url: str) -> AsyncOpenAI:
    """A client that opens a connection per request (`Connection: close`): llama-server dropped
    a kept-alive connection under a later turn's request now and then on a loaded machine
    ("Server disconnected without sending a response"), which ended the whole measurement. A new
    loopback connection costs well under a millisecond, the same for every server."""
    return AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, default_headers={"Connection": "close"})


def prompt_cache_report(base_url: str, model: str) -> dict[str, int] | None:
    """ClaraCore lists its prompt cache with the model; other servers say nothing (None)."""
    try:
        r = httpx.get(f"{base_url}/models/{model}", timeout=5.0)
        cache = r.json().get("prompt_cache") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return cache if isinstance(cache, dict) else None


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}
