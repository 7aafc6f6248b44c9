"""How one model file is sized to the machine: the context, layers, cache and slots that fit.

Every model is planned to fit the budget *alone*: the pool evicts idle models before a load, so
planning them to share the budget would shrink every context for nothing. Priorities, most
important first: the minimum context (a model that cannot reach it is dropped with the reason,
not served crippled), the preferred context, every layer on the GPU, then parallel slots —
except with `throughput_first`, which keeps 4+ slots before context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from claracore.config import ModelSpec
from claracore.manage.planner.options import PlanOptions
from claracore.modelfile.estimate import MemoryEstimate, estimate_llm
from claracore.modelfile.gguf import GGUFInfo
from claracore.units import GIB

EMBED_CONTEXT = 8192  # embedding inputs are passages; a bigger window only costs memory


class ModelFileLike(Protocol):
    """What the planner needs of a tracked file (`store.ModelFile` has it); read-only."""

    @property
    def path(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def mmproj(self) -> str | None: ...


@dataclass
class ModelPlan:
    """What was chosen for one file, with the estimate that justified it (or why it was dropped)."""

    name: str
    path: str
    type: str
    spec: ModelSpec | None = None
    planned: ModelSpec | None = None  # the planner's own choice, before hand edits were kept
    estimate: MemoryEstimate | None = None
    dropped: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "type": self.type}
        if self.spec is not None:
            s = self.spec
            out.update(
                gpuLayers=s.gpu_layers,
                contextLength=s.context_length,
                cacheType=s.cache_type_k,
                batchSize=s.batch_size,
                parallel=s.parallel,
            )
        if self.estimate is not None:
            out.update(vramBytes=self.estimate.vram_bytes, ramBytes=self.estimate.ram_bytes)
        if self.dropped:
            out["dropped"] = self.dropped
        if self.notes:
            out["notes"] = self.notes
        return out


def plan_model(
    f: ModelFileLike, o: PlanOptions, backend: str, vram: int, ram: int, read: Callable[[str], GGUFInfo]
) -> ModelPlan:
    """A file that cannot be read or does not fit comes back dropped, with the reason, so one bad
    file never stops the others from being planned."""
    kind = f.kind or "llm"
    p = ModelPlan(name=f.name, path=f.path, type=kind)
    spec_backend = o.force_backend or "auto"
    if kind in ("stt", "tts"):  # not GGUF: their runtimes size themselves
        p.spec = _spec(f, kind, spec_backend, parallel=1)
        return p
    try:
        info = read(f.path)
    except Exception as exc:  # a file that changed since the scan: report it, plan the rest
        p.dropped = f"cannot read the GGUF header: {exc}"
        return p
    trained = info.context_length or o.preferred_context
    encoder = kind in ("embedding", "reranker")
    if encoder:
        ctx = min(trained, EMBED_CONTEXT)
        fit = None
        for tier in ("full", "partial", "cpu") if vram > 0 else ("cpu",):
            if (fit := _fit(info, ctx, 1, "f16", vram, ram, encoder=True, tier=tier)) is not None:
                break
        if fit is None:
            p.dropped = f"does not fit {_gb(ram)} GB of RAM even on the CPU at context {ctx}"
            return p
        layers, p.estimate = fit
        p.spec = _spec(
            f, kind, spec_backend, context_length=ctx, gpu_layers=layers, batch_size=ctx, parallel=1
        )
        return p
    floor = min(o.min_context, trained)
    if floor < o.min_context:
        p.notes.append(f"trained context {trained} is below minContext {o.min_context}; using {trained}")
    top = max(min(o.preferred_context, trained), floor)
    contexts = [top]
    while contexts[-1] // 2 > floor:
        contexts.append(contexts[-1] // 2)
    if contexts[-1] != floor:
        contexts.append(floor)
    rounds = [(8, 4), (2, 1)] if o.throughput_first else [(2, 1)]
    # Per context: everything on the GPU, else the most layers any cache/slot choice allows
    # (partial offload is slow, so a q8_0 cache that keeps more layers on the GPU wins), else CPU.
    tiers = ("full", "partial", "cpu") if vram > 0 else ("cpu",)
    for slots in rounds:
        for ctx in contexts:
            for tier in tiers:
                found = [
                    (fit, cache, n_seq)
                    for cache in ("f16", "q8_0")
                    for n_seq in slots
                    if (fit := _fit(info, ctx, n_seq, cache, vram, ram, encoder=False, tier=tier)) is not None
                ]
                if not found:
                    continue
                best = found[0] if tier != "partial" else max(found, key=lambda c: c[0][0])
                (layers, p.estimate), cache, n_seq = best
                if ctx < min(o.preferred_context, trained):
                    p.notes.append(f"context {ctx}: preferredContext {o.preferred_context} does not fit")
                if tier != "full" and backend != "cpu":
                    p.notes.append(
                        f"{'some' if layers else 'no'} layers on the GPU: the whole model does not fit VRAM"
                    )
                p.spec = _spec(
                    f,
                    "llm",
                    spec_backend,
                    mmproj=f.mmproj,
                    context_length=ctx,
                    gpu_layers=layers,
                    batch_size=min(512, ctx),
                    parallel=n_seq,
                    cache_type_k=cache,
                    cache_type_v=cache,
                )
                return p
    p.dropped = (
        f"even minContext {floor} with a q8_0 KV cache and 1 slot does not fit "
        f"{_gb(vram)} GB VRAM + {_gb(ram)} GB RAM"
    )
    return p


def _spec(f: ModelFileLike, kind: str, backend: str, **fields: Any) -> ModelSpec:
    """Validated like a config entry, so the planner can never write a file that fails to load."""
    return ModelSpec.model_validate(
        {"name": f.name, "model": f.path, "type": kind, "backend": backend, **fields}
    )


def _gb(n: int) -> str:
    return f"{n / GIB:.2f}"


def _fit(
    info: GGUFInfo, ctx: int, n_seq: int, cache: str, vram: int, ram: int, *, encoder: bool, tier: str
) -> tuple[int, MemoryEstimate] | None:
    """(gpu_layers, estimate) that fit both budgets in `tier`, or None.

    "full": every layer on the GPU (-1, what llama.cpp takes for "all"); "partial": the most
    layers that fit, at least one; "cpu": none.
    """
    n_all = info.block_count + 1  # llama.cpp counts the output head as one more layer

    def cost(layers: int) -> MemoryEstimate:
        return estimate_llm(
            info,
            n_ctx=ctx,
            n_seq=n_seq,
            cache_type_k=cache,
            cache_type_v=cache,
            gpu_layers=layers,
            n_batch=ctx if encoder else min(512, ctx),
            n_ubatch=ctx if encoder else min(512, ctx),
            flash_attn=not encoder,
            embedding_only=encoder,
            n_outputs_max=None if encoder else n_seq,
        )

    def fits(e: MemoryEstimate) -> bool:
        return e.vram_bytes <= vram and e.ram_bytes <= ram

    if tier == "full":
        e = cost(n_all)
        return (-1, e) if fits(e) else None
    if tier == "partial":
        lo, hi, best = 1, n_all - 1, None  # more layers on the GPU only ever moves bytes off RAM
        while lo <= hi:
            mid = (lo + hi) // 2
            e = cost(mid)
            if e.vram_bytes <= vram:
                if e.ram_bytes <= ram:
                    best = (mid, e)
                lo = mid + 1
            else:
                hi = mid - 1
        return best
    e = cost(0)
    return (0, e) if fits(e) else None
