"""Per-sequence native sampler chains, JSON schema grammars, and logprobs.

Each sequence owns one `llama_sampler` chain, so sampling runs in C and different requests
in one batch can use different settings. Everything that can fail (a bad grammar, a token
id out of range) fails here, in the caller's thread, before the request reaches the worker.
"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from claracore.errors import InvalidRequestError

#: How many recent tokens the repetition penalties look at (llama.cpp's default).
PENALTY_LAST_N = 64


@dataclass(frozen=True)
class SamplingParams:
    """What one choice samples with; `None` means "off" for the optional filters."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    grammar: str | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """GBNF for an OpenAI `response_format`, or None for plain text.

    Raises InvalidRequestError naming `response_format` when the schema cannot be converted.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind is None:  # as OpenAI answers it: a schema without a type must not pass as plain text
        raise InvalidRequestError(
            "response_format.type is required: text, json_object or json_schema",
            param="response_format.type",
        )
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")
        return _schema_grammar(schema) if schema else JSON_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequestError(
                "response_format.json_schema must be an object with a 'schema' object",
                param="response_format.json_schema",
            )
        return _schema_grammar(spec.get("schema") or {})
    raise InvalidRequestError(
        f"response_format.type must be text, json_object or json_schema, not {kind!r}",
        param="response_format.type",
    )


def _schema_grammar(schema: dict[str, Any]) -> str:
    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises bare Exceptions, KeyErrors, ...
        raise InvalidRequestError(
            f"response_format.json_schema.schema cannot be turned into a grammar: {exc!r}",
            param="response_format.json_schema.schema",
        ) from exc


def build_chain(
    params: SamplingParams, vocab: llama_cpp.llama_vocab_p, n_vocab: int, history: Sequence[int] = ()
) -> llama_cpp.llama_sampler_p:
    """A native sampler chain for one sequence; the caller frees it with `free_chain`.

    `history` is the prompt: the penalties see its last PENALTY_LAST_N tokens as already
    written, as llama-server's and llama-cpp-python's do, so a repeat penalty also keeps the
    answer from parroting the question.
    """
    for token in params.logit_bias:
        if not 0 <= token < n_vocab:
            raise InvalidRequestError(
                f"logit_bias token id {token} is outside the vocabulary (0..{n_vocab - 1})",
                param="logit_bias",
            )
    grammar = None
    if params.grammar is not None:
        grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
        if not grammar:
            raise InvalidRequestError("the grammar does not parse", param="response_format")

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if params.logit_bias:
        n = len(params.logit_bias)
        biases = (llama_cpp.llama_logit_bias * n)(
            *(llama_cpp.llama_logit_bias(token=t, bias=b) for t, b in params.logit_bias.items())
        )
        add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, n, biases))
    if params.repeat_penalty != 1.0 or params.presence_penalty or params.frequency_penalty:
        penalties = llama_cpp.llama_sampler_init_penalties(
            n_vocab, PENALTY_LAST_N, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
        )
        for token in history[-PENALTY_LAST_N:]:
            llama_cpp.llama_sampler_accept(penalties, token)
        add(chain, penalties)
    if grammar is not None:
        add(chain, grammar)
    if params.temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    seed = llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


def free_chain(chain: llama_cpp.llama_sampler_p | None) -> None:
    if chain:
        llama_cpp.llama_sampler_free(chain)


@dataclass(frozen=True)
class TokenLogprob:
    """The model's log-probability of one generated token, and of its strongest rivals."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...]


def token_logprob(
    ctx: llama_cpp.llama_context_p, idx: int, n_vocab: int, token: int, n_top: int
) -> TokenLogprob:
    """Log-softmax over the raw logits of batch row `idx` (only runs when a request asks)."""
    ptr = llama_cpp.llama_get_logits_ith(ctx, idx)
    logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    peak = float(logits.max())
    log_z = peak + math.log(float(np.exp(logits - peak).sum()))
    top: tuple[tuple[int, float], ...] = ()
    if n_top > 0:
        best = np.argpartition(logits, -n_top)[-n_top:]
        best = best[np.argsort(-logits[best])]
        top = tuple((int(t), float(logits[t]) - log_z) for t in best)
    return TokenLogprob(token_id=token, logprob=float(logits[token]) - log_z, top=top)
