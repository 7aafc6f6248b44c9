"""OpenAI wire types for chat, completions and models: pydantic only, no logic.

Fields follow the OpenAI docs' order, ClaraCore's extras last. Requests accept and ignore
fields they do not know, because clients send extras; fields of the wrong type are errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _absent(value: Any) -> bool:
    """For `exclude_if`: a field left out of the JSON when it has nothing to say."""
    return value is None


# ---------------------------------------------------------------- requests


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class LoraScale(BaseModel):
    """llama-server's per-request adapter scale: `id` is the adapter's index in the model's list."""

    model_config = ConfigDict(extra="allow")
    id: int
    scale: float = Field(ge=-100, le=100)


class _SamplingFields(_Request):
    """What chat and completion requests share."""

    model: str
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=16)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: str | None = None
    # llama.cpp extras, accepted by llama.cpp's server too
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    lora: list[LoraScale] | None = None  # adapter scales for this request (the model's `lora:`)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None  # "none" turns tools off; others are hints
    reasoning_effort: str | None = None  # passed to templates that read it (gpt-oss)
    # llama-server's extras: where reasoning goes, and variables for the chat template
    reasoning_format: Literal["none", "auto", "deepseek"] | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    suffix: str | None = None
    response_format: dict[str, Any] | None = None


# ---------------------------------------------------------------- responses


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None
    # With speculative decoding: accepted_prediction_tokens and rejected_prediction_tokens, as
    # OpenAI reports its predicted outputs.
    completion_tokens_details: dict[str, int] | None = Field(default=None, exclude_if=_absent)


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None


FinishReason = Literal["stop", "length", "tool_calls"]


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    # A thinking model's reasoning, split from the answer (llama-server's and DeepSeek's field).
    reasoning_content: str | None = Field(default=None, exclude_if=_absent)
    # Left out unless there are calls, like OpenAI's own answers.
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=_absent)


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkToolCall(BaseModel):
    index: int
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = Field(default=None, exclude_if=_absent)
    # Absent from the per-token chunks, which are most of a stream's bytes.
    tool_calls: list[ChunkToolCall] | None = Field(default=None, exclude_if=_absent)


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per token."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# ---------------------------------------------------------------- models


class MemoryInfo(BaseModel):
    vram_bytes: int
    ram_bytes: int
    remote_bytes: int = Field(default=0, exclude_if=lambda v: v == 0)  # on RPC workers; shown when some


class PromptCacheInfo(BaseModel):
    """A loaded LLM's prompt cache: its budget, what it holds, and how often it was restored from."""

    limit_bytes: int
    bytes: int
    entries: int
    lookups: int
    hits: int
    restored_tokens: int
    saves: int
    failures: int


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "claracore"
    # ClaraCore's extras
    type: str
    aliases: list[str] = Field(default_factory=list)
    state: Literal["unloaded", "loading", "loaded", "failed"]
    error: str | None = None
    memory: MemoryInfo | None = None
    in_flight: int = 0
    prompt_cache: PromptCacheInfo | None = None
    # what the model is and how it loads (None where it does not apply, or the file is unreadable)
    file: str | None = None
    size_bytes: int | None = None
    quantization: str | None = None
    context_length: int | None = None  # tokens per sequence
    gpu_layers: int | None = None
    parallel: int | None = None
    inputs: list[str] | None = None  # chat models: "text", plus "image" / "audio" with a projector
    speculative: str | None = None  # "ngram" when it decodes speculatively
    lora: list[dict[str, Any]] | None = Field(default=None, exclude_if=_absent)  # adapters: path, scale
    rpc: list[str] | None = None  # RPC workers that hold offloaded layers


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]
    budget: MemoryInfo | None = None  # ClaraCore's extra: the pool's memory budget


# ---------------------------------------------------------------- embeddings and reranking


class EmbeddingRequest(_Request):
    input: str | list[str] | list[int] | list[list[int]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str  # base64 of little-endian float32 when asked
    index: int


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class RerankRequest(_Request):
    model: str
    query: str
    documents: list[str | RerankDocument] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    model: str
    results: list[RerankResult]
    usage: EmbeddingUsage
    # ClaraCore's extra: how the scores were made ("cross-encoder", or "cosine" for an embedding model)
    method: Literal["cross-encoder", "cosine"] = "cross-encoder"
