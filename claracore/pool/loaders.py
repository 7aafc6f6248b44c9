"""One row per model type: how a config entry becomes a memory estimate and a loaded runtime.

The pool asks `recipe(spec)` before it loads, so the estimate and the runtime are built from the
same effective settings (context, parallel, cache types, offload) and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from claracore.config import ModelSpec
from claracore.errors import ModelLoadError
from claracore.modelfile.estimate import MemoryEstimate, disk_size, estimate_file, estimate_llm
from claracore.modelfile.gguf import GGUFError, GGUFInfo, read_gguf
from claracore.modelfile.kind import infer_model_type
from claracore.pool import remote
from claracore.runtime.base import Runtime

#: Context per sequence when the config does not say: enough for chat, cheap on small machines.
DEFAULT_CONTEXT = 4096


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
    rpc: list[str] | None = None  # the RPC workers the offloaded layers are split over


@dataclass(frozen=True)
class LoadRecipe:
    """What loading one model will cost and how to do it (`load` blocks: call it in a thread)."""

    kind: str
    estimate: MemoryEstimate
    load: Callable[[], Runtime]
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
        rpc=tuple(spec.rpc or ()),  # even without offload support: a build without RPC says so
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
        n_outputs_max=spec.parallel,
    )

    estimate = remote.on_workers(estimate, options.rpc)
    local = _loader(spec, lambda: LlmRuntime(options, name=spec.name))
    load = remote.checked(local, spec.name, options.rpc, estimate)
    facts = _gguf_facts(spec, info, n_ctx=n_ctx, gpu_layers=options.gpu_layers, parallel=spec.parallel)
    return LoadRecipe(kind="llm", estimate=estimate, load=load, facts=facts)


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
