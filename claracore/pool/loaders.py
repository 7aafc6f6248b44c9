"""One row per model type: how a config entry becomes a memory estimate and a loaded runtime.

The pool asks `recipe(spec)` before it loads, so the estimate and the runtime are built from the
same effective settings (context, parallel, cache types, offload) and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claracore.config import ModelSpec
from claracore.errors import ModelLoadError
from claracore.modelfile.estimate import MemoryEstimate, disk_size, estimate_file, estimate_llm
from claracore.modelfile.gguf import GGUFError, GGUFInfo, read_gguf
from claracore.modelfile.kind import infer_model_type
from claracore.modelfile.reader import parse
from claracore.pool import remote
from claracore.runtime.base import Runtime

#: Context per sequence when the config does not say: enough for chat, cheap on small machines.
DEFAULT_CONTEXT = 4096

#: The most host memory an LLM's prompt cache takes when the config does not size it: what the
#: budget has free at load, up to this, given back before any model is evicted. About 45,000
#: tokens of conversation for a 135M model, 8,000 for an 8B one with grouped-query attention.
DEFAULT_PROMPT_CACHE_MB = 1024
MIB = 1 << 20


@dataclass(frozen=True)
class ModelFacts:
    """What a listing shows beside the estimate: the file and the effective settings of a load
    (the config's values after defaults and the file's limits), so they cannot disagree."""

    file: str
    size_bytes: int
    quantization: str | None = None  # the GGUF's file type: Q4_K_M, F16, ...
    context_length: int | None = None  # tokens per sequence
    gpu_layers: int | None = None
    parallel: int | None = None  # sequences decoded together
    inputs: list[str] | None = None  # what a chat message may hold: text, and image/audio with a projector
    speculative: str | None = None  # "ngram" or "draft" when it decodes speculatively
    lora: list[dict[str, Any]] | None = None  # adapters: path and default scale
    rpc: list[str] | None = None  # the RPC workers the offloaded layers are split over


@dataclass(frozen=True)
class LoadRecipe:
    """What loading one model will cost and how to do it (`load` blocks: call it in a thread)."""

    kind: str
    estimate: MemoryEstimate  # includes a prompt cache sized in the config
    load: Callable[[], Runtime]
    prompt_cache_bytes: int = 0  # the part of estimate.ram_bytes that is a configured prompt cache
    spare_ram: int = 0  # RAM for an "auto" prompt cache, granted if free (runtime.base.PromptCaching)
    facts: ModelFacts | None = None


def model_type(spec: ModelSpec) -> str:
    """The configured type, the legacy `embedding: true`, or what the file says it is."""
    if spec.type:
        return spec.type
    if spec.embedding:
        return "embedding"
    try:
        return infer_model_type(spec.model)
    except (GGUFError, OSError):
        return "llm"  # the load will report what is wrong with the file


def recipe(spec: ModelSpec, *, gpu_offload: bool, workers: Sequence[str] = ()) -> LoadRecipe:
    """Estimate and loader for `spec`. Raises ModelLoadError when the file cannot be used.

    `workers` are the config's global RPC workers, for a model that names none of its own.
    """
    if spec.rpc is None and workers:
        spec = spec.model_copy(update={"rpc": list(workers)})
    gpu_offload = remote.offload(gpu_offload, spec.rpc)
    kind = model_type(spec)
    make = _RECIPES.get(kind)
    if make is None:
        raise ModelLoadError(spec.name, f"no runtime for models of type '{kind}' in this build")
    if not Path(spec.model).exists():
        raise ModelLoadError(spec.name, f"file not found: {spec.model}")
    try:
        return make(spec, gpu_offload)
    except GGUFError as exc:
        raise ModelLoadError(spec.name, exc.message) from exc


def _loader(
    spec: ModelSpec, make: Callable[[], Runtime], *, extra: str | None = None
) -> Callable[[], Runtime]:
    """`make`, with a runtime's refusal (ValueError) or a missing optional library (ImportError,
    naming the extra that brings it) reported as this model's ModelLoadError."""

    def load() -> Runtime:
        try:
            return make()
        except ImportError as exc:
            if extra is None:
                raise
            raise ModelLoadError(spec.name, f"this model needs the [{extra}] extra ({exc})") from exc
        except ValueError as exc:
            raise ModelLoadError(spec.name, str(exc)) from exc

    return load


def _gguf_facts(spec: ModelSpec, info: GGUFInfo, *, n_ctx: int, gpu_layers: int, parallel: int) -> ModelFacts:
    return ModelFacts(
        file=str(spec.model),
        size_bytes=info.file_size,
        quantization=info.file_type,
        context_length=n_ctx,
        gpu_layers=gpu_layers,
        parallel=parallel,
        rpc=list(spec.rpc) if spec.rpc else None,
    )


def _llm_recipe(spec: ModelSpec, gpu_offload: bool) -> LoadRecipe:
    from claracore.runtime.llm import LlmOptions, LlmRuntime
    from claracore.runtime.llm_context import outputs_per_step

    info = read_gguf(spec.model)
    n_ctx = spec.context_length or DEFAULT_CONTEXT
    if info.context_length > 0:
        n_ctx = min(n_ctx, info.context_length)
    options = LlmOptions(
        path=str(spec.model),
        n_ctx=n_ctx,
        parallel=spec.parallel,
        n_batch=spec.batch_size,
        n_threads=spec.threads,
        gpu_layers=spec.gpu_layers if gpu_offload else 0,
        use_mmap=spec.use_mmap,
        cache_type_k=spec.cache_type_k,
        cache_type_v=spec.cache_type_v,
        flash_attn=spec.flash_attn,
        chat_template=spec.chat_template,
        rpc=tuple(spec.rpc or ()),  # even without offload: a build without RPC says so
        speculative=spec.speculative,
        draft_max=spec.draft_max,
        mmproj=spec.mmproj,
        lora=tuple((a.path, a.scale) for a in spec.lora),
        draft_model=spec.draft_model,
        prompt_cache_bytes=(spec.prompt_cache_mb or 0) * MIB,
    )
    estimate = estimate_llm(
        info,
        n_ctx=n_ctx,
        n_seq=spec.parallel,
        cache_type_k=spec.cache_type_k,
        cache_type_v=spec.cache_type_v,
        gpu_layers=options.gpu_layers,
        n_batch=spec.batch_size,
        n_ubatch=spec.batch_size,
        flash_attn=spec.flash_attn is not False,
        n_outputs_max=outputs_per_step(options, spec.parallel),
    )

    inputs = ["text"]
    if spec.mmproj:
        estimate = _with_projector(estimate, spec, on_gpu=options.gpu_layers != 0)
        inputs += projector_inputs(Path(spec.mmproj), spec.name)
    if spec.draft_model:
        estimate = _with_draft(estimate, spec, n_ctx, options.gpu_layers)
    for adapter in spec.lora:
        if not Path(adapter.path).is_file():
            raise ModelLoadError(spec.name, f"LoRA adapter not found: {adapter.path}")
        size = Path(adapter.path).stat().st_size  # the adapter's tensors sit beside the weights
        estimate = dataclasses.replace(
            estimate, ram_bytes=estimate.ram_bytes + size, weights_ram=estimate.weights_ram + size
        )
    estimate = remote.on_workers(estimate, options.rpc)
    local = _loader(spec, lambda: LlmRuntime(options, name=spec.name))
    load = remote.checked(local, spec.name, options.rpc, estimate)
    facts = dataclasses.replace(
        _gguf_facts(spec, info, n_ctx=n_ctx, gpu_layers=options.gpu_layers, parallel=spec.parallel),
        inputs=inputs,
        speculative="draft" if spec.draft_model else spec.speculative,
        lora=[{"path": a.path, "scale": a.scale} for a in spec.lora] or None,
    )
    cache = options.prompt_cache_bytes  # the cache lives in host memory
    return LoadRecipe(
        kind="llm",
        estimate=dataclasses.replace(estimate, ram_bytes=estimate.ram_bytes + cache),
        load=load,
        facts=facts,
        prompt_cache_bytes=cache,
        spare_ram=DEFAULT_PROMPT_CACHE_MB * MIB if spec.prompt_cache_mb is None else 0,
    )


#: A projector's working memory beside its weights (the image encoder's compute buffer); the
#: SigLIP towers of Gemma 3 and SmolVLM use 60-200 MiB, so this is the larger end.
PROJECTOR_COMPUTE = 200 << 20


def _with_draft(estimate: MemoryEstimate, spec: ModelSpec, n_ctx: int, gpu_layers: int) -> MemoryEstimate:
    """`estimate` plus the draft model: its weights and a KV cache of the same shape of slots."""
    try:
        info = read_gguf(spec.draft_model or "")
    except GGUFError as exc:
        raise ModelLoadError(spec.name, f"draft model: {exc.message}") from exc
    draft = estimate_llm(
        info, n_ctx=n_ctx, n_seq=spec.parallel, gpu_layers=gpu_layers, n_batch=spec.batch_size,
        n_ubatch=spec.batch_size, n_outputs_max=spec.parallel,
    )  # fmt: skip
    return dataclasses.replace(
        estimate,
        vram_bytes=estimate.vram_bytes + draft.vram_bytes,
        ram_bytes=estimate.ram_bytes + draft.ram_bytes,
        weights_vram=estimate.weights_vram + draft.weights_vram,
        weights_ram=estimate.weights_ram + draft.weights_ram,
        kv_bytes=estimate.kv_bytes + draft.kv_bytes,
    )


def projector_inputs(path: Path, model: str) -> list[str]:
    """What a projector file encodes, from its metadata: "image" and/or "audio". A file that is
    not a GGUF fails `model`'s load."""
    try:
        kv = parse(path).kv
    except GGUFError as exc:
        raise ModelLoadError(model, f"projector (mmproj) {path.name}: {exc.message}") from exc
    found = [
        kind for kind, key in (("image", "vision"), ("audio", "audio")) if kv.get(f"clip.has_{key}_encoder")
    ]
    return found


def _with_projector(estimate: MemoryEstimate, spec: ModelSpec, *, on_gpu: bool) -> MemoryEstimate:
    """`estimate` plus the projector (`mmproj`): its weights and encoder buffers, on the GPU when
    the model's layers are offloaded (libmtmd follows the model), else in RAM."""
    path = Path(spec.mmproj or "")
    if not path.is_file():
        raise ModelLoadError(spec.name, f"projector (mmproj) not found: {path}")
    cost = path.stat().st_size + PROJECTOR_COMPUTE
    if on_gpu:
        return dataclasses.replace(
            estimate, vram_bytes=estimate.vram_bytes + cost, weights_vram=estimate.weights_vram + cost
        )
    return dataclasses.replace(
        estimate, ram_bytes=estimate.ram_bytes + cost, weights_ram=estimate.weights_ram + cost
    )


def _encoder_recipe(spec: ModelSpec, gpu_offload: bool, kind: str) -> LoadRecipe:
    """Embedding and rerank models: one context, many short sequences decoded together."""
    from claracore.runtime.embedding import EmbeddingOptions, EmbeddingRuntime
    from claracore.runtime.reranker import RerankRuntime

    info = read_gguf(spec.model)
    n_ctx = spec.context_length or info.context_length or 512
    if info.context_length > 0:
        n_ctx = min(n_ctx, info.context_length)
    n_batch = max(spec.batch_size, n_ctx)  # a whole sequence must fit one batch for non-causal models
    options = EmbeddingOptions(
        path=str(spec.model),
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_threads=spec.threads,
        gpu_layers=spec.gpu_layers if gpu_offload else 0,
        use_mmap=spec.use_mmap,
    )
    estimate = estimate_llm(
        info,
        n_ctx=n_ctx,
        n_seq=options.n_seq,
        gpu_layers=options.gpu_layers,
        n_batch=n_batch,
        n_ubatch=n_batch,
        embedding_only=True,
    )
    runtime_class = RerankRuntime if kind == "reranker" else EmbeddingRuntime

    load = _loader(spec, lambda: runtime_class(options, name=spec.name))
    facts = _gguf_facts(spec, info, n_ctx=n_ctx, gpu_layers=options.gpu_layers, parallel=options.n_seq)
    return LoadRecipe(kind=kind, estimate=estimate, load=load, facts=facts)


def _stt_recipe(spec: ModelSpec, gpu_offload: bool) -> LoadRecipe:
    from claracore.runtime.whisper import WhisperOptions, WhisperRuntime, estimate_memory

    on_gpu = gpu_offload and spec.gpu_layers != 0
    options = WhisperOptions(
        path=str(spec.model),
        device="cuda" if on_gpu else "cpu",
        compute_type="float16" if on_gpu else "int8",
        threads=spec.threads or 0,
    )

    load = _loader(spec, lambda: WhisperRuntime(options, name=spec.name), extra="stt")

    estimate_file(spec.model)  # raises GGUFError (reported as a load failure) when the folder is missing
    need = estimate_memory(options)  # measured: weights plus working memory per concurrent job
    estimate = MemoryEstimate(vram_bytes=need if on_gpu else 0, ram_bytes=0 if on_gpu else need)
    facts = ModelFacts(file=str(spec.model), size_bytes=disk_size(Path(spec.model)))
    return LoadRecipe(kind="stt", estimate=estimate, load=load, facts=facts)


def _tts_recipe(spec: ModelSpec, gpu_offload: bool) -> LoadRecipe:
    from claracore.runtime.piper import PiperOptions, PiperRuntime, estimate_memory

    load = _loader(
        spec, lambda: PiperRuntime(PiperOptions(path=str(spec.model)), name=spec.name), extra="tts"
    )

    estimate_file(spec.model)  # raises GGUFError (reported as a load failure) when the file is missing
    estimate = MemoryEstimate(vram_bytes=0, ram_bytes=estimate_memory(PiperOptions(path=str(spec.model))))
    facts = ModelFacts(file=str(spec.model), size_bytes=disk_size(Path(spec.model)))
    return LoadRecipe(kind="tts", estimate=estimate, load=load, facts=facts)


_RECIPES: dict[str, Callable[[ModelSpec, bool], LoadRecipe]] = {
    "llm": _llm_recipe,
    "embedding": lambda spec, gpu: _encoder_recipe(spec, gpu, "embedding"),
    "reranker": lambda spec, gpu: _encoder_recipe(spec, gpu, "reranker"),
    "stt": _stt_recipe,
    "tts": _tts_recipe,
}
