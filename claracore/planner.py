"""Which settings fit this machine: tracked model files + hardware + options -> a config.

Pure apart from reading GGUF headers (never weights), so it is tested with tiny models and a
machine described by numbers. Every model is planned to fit the budget *alone*: the pool evicts
idle models before a load, so planning them to share the budget would shrink every context for
nothing. Priorities, most important first: the minimum context (a model that cannot reach it is
dropped with the reason, not served crippled), the preferred context, every layer on the GPU,
then parallel slots — except with `throughput_first`, which keeps 4+ slots before context.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from claracore.config import Config, MemoryBudget, ModelSpec
from claracore.errors import InvalidRequestError
from claracore.pool.estimate import MemoryEstimate, estimate_llm
from claracore.pool.gguf import GGUFInfo, read_gguf

GIB = 1 << 30
GENERATED = "planner.generated"  # store setting: `Plan.record()` of the last config written
BACKENDS = ("cpu", "cuda", "rocm", "vulkan", "metal")
MAX_CONTEXT = 1 << 24  # 16M tokens: beyond every trained context that exists; more is a typo
MAX_MEMORY_GB = 1 << 16  # 64 TiB
EMBED_CONTEXT = 8192  # embedding inputs are passages; a bigger window only costs memory
#: Fields the planner chooses; any other field of an existing entry is always the user's.
PLANNED = (
    "backend",
    "gpu_layers",
    "context_length",
    "batch_size",
    "parallel",
    "cache_type_k",
    "cache_type_v",
)
_OPTION_KEYS = {
    "forceBackend": "force_backend",
    "forceVRAM": "force_vram_gb",
    "forceRAM": "force_ram_gb",
    "enableJinja": "enable_jinja",
    "throughputFirst": "throughput_first",
    "minContext": "min_context",
    "preferredContext": "preferred_context",
}


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


@dataclass(frozen=True)
class Hardware:
    """The machine as the planner sees it: totals in bytes and the backend llama.cpp would use."""

    vram_bytes: int
    ram_bytes: int
    backend: str = "cpu"

    @classmethod
    def from_detection(cls, detection: Mapping[str, Any]) -> Hardware:
        """From `GET /api/system/detection`'s shape (totalVRAMGB, totalRAMGB, recommendedBackend)."""
        return cls(
            vram_bytes=int(float(detection.get("totalVRAMGB") or 0) * GIB),
            ram_bytes=int(float(detection.get("totalRAMGB") or 0) * GIB),
            backend=str(detection.get("recommendedBackend") or "cpu"),
        )


@dataclass(frozen=True)
class PlanOptions:
    """The spec's generation options, validated; None on a force_* field means "detect"."""

    force_backend: str | None = None
    force_vram_gb: float | None = None
    force_ram_gb: float | None = None
    enable_jinja: bool = True
    throughput_first: bool = False
    min_context: int = 2048
    preferred_context: int = 8192

    @classmethod
    def from_api(
        cls, data: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
    ) -> PlanOptions:
        """Parse the spec's camelCase options; raise InvalidRequestError (400) naming the bad one.

        Unknown keys are rejected: a misspelt option would otherwise be an option that does
        nothing. `defaults` (same keys) fill what the request leaves out, e.g. saved settings.
        """
        if data is not None and not isinstance(data, Mapping):
            raise InvalidRequestError("options must be an object", param="options")
        merged = {**(defaults or {}), **(data or {})}
        unknown = sorted(set(data or {}) - set(_OPTION_KEYS))
        if unknown:
            raise InvalidRequestError(
                f"unknown option(s): {', '.join(unknown)}; known: {', '.join(_OPTION_KEYS)}",
                param=unknown[0],
            )
        values: dict[str, Any] = {}
        for key, attr in _OPTION_KEYS.items():
            value = merged.get(key)
            if value is None:
                continue
            values[attr] = _check(key, value)
        options = cls(**values)
        if not options.enable_jinja:
            raise InvalidRequestError(
                "enableJinja=false is not supported: chat prompts are always rendered from the "
                "model's Jinja template (there is no non-Jinja template engine to fall back to)",
                param="enableJinja",
            )
        if options.preferred_context < options.min_context:
            raise InvalidRequestError(
                f"preferredContext ({options.preferred_context}) is below minContext ({options.min_context})",
                param="preferredContext",
            )
        return options


def _check(key: str, value: Any) -> Any:
    if key == "forceBackend":
        if not isinstance(value, str) or value.strip().lower() not in (*BACKENDS, "auto"):
            raise InvalidRequestError(f"{key}: expected one of {', '.join(BACKENDS)}", param=key)
        backend = value.strip().lower()
        return None if backend == "auto" else backend
    if key in ("enableJinja", "throughputFirst"):
        if not isinstance(value, bool):
            raise InvalidRequestError(f"{key}: expected true or false", param=key)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{key}: expected a number (got {value!r})", param=key)
    if key in ("forceVRAM", "forceRAM"):
        if not 0 <= value <= MAX_MEMORY_GB or value != value:
            raise InvalidRequestError(
                f"{key}: expected GB between 0 and {MAX_MEMORY_GB} (got {value})", param=key
            )
        if key == "forceRAM" and value == 0:
            raise InvalidRequestError(f"{key}: a machine needs some RAM (got 0)", param=key)
        return float(value)
    if value != int(value) or not 16 <= value <= MAX_CONTEXT:
        raise InvalidRequestError(
            f"{key}: expected whole tokens between 16 and {MAX_CONTEXT} (got {value})", param=key
        )
    return int(value)


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


@dataclass
class Plan:
    """The config and the per-model report behind it."""

    config: Config
    models: list[ModelPlan]
    backend: str
    vram_budget: int
    ram_budget: int

    def record(self) -> dict[str, dict[str, Any]]:
        """What the planner chose per path (its planned fields): store it, pass it back as
        `generated` next time, and a value that differs from it is known to be a hand edit."""
        return {
            m.path: m.planned.model_dump(mode="json", include=set(PLANNED))
            for m in self.models
            if m.planned is not None
        }

    def to_api(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "vramBudgetBytes": self.vram_budget,
            "ramBudgetBytes": self.ram_budget,
            "models": [m.to_api() for m in self.models if not m.dropped],
            "dropped": [m.to_api() for m in self.models if m.dropped],
        }


def margin(total: int) -> int:
    """Headroom left for the driver, the desktop and llama.cpp's own slack: 10%, at most 1 GiB
    (a flat 1 GiB would eat a small card whole)."""
    return min(total // 10, GIB)


def plan_config(
    models: Iterable[ModelFileLike],
    hardware: Hardware,
    options: PlanOptions,
    *,
    existing: Config | None = None,
    generated: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """The config of `plan` (see there)."""
    return plan(models, hardware, options, existing=existing, generated=generated).config


def plan(
    models: Iterable[ModelFileLike],
    hardware: Hardware,
    options: PlanOptions,
    *,
    existing: Config | None = None,
    generated: Mapping[str, Mapping[str, Any]] | None = None,
    read: Callable[[str], GGUFInfo] = read_gguf,
    progress: Callable[[int, int, str], None] | None = None,
) -> Plan:
    """Plan every model; keep `existing`'s server settings and hand edits.

    An existing entry is matched by file path. Its non-planned fields (name, aliases, sampling,
    ttl…) are kept; a planned field is kept when it was edited by hand, i.e. differs from what
    the planner wrote last time (`generated`, per path), or from the default when there is no
    record. Existing entries whose file is not among `models` but still exists stay as they are.
    """
    files = list(models)
    backend = options.force_backend or hardware.backend
    vram = int(options.force_vram_gb * GIB) if options.force_vram_gb is not None else hardware.vram_bytes
    ram = int(options.force_ram_gb * GIB) if options.force_ram_gb is not None else hardware.ram_bytes
    vram_budget = 0 if backend == "cpu" else max(vram - margin(vram), 0)
    ram_budget = max(ram - margin(ram), 0)
    by_path = {os.path.normpath(s.model): s for s in existing.models} if existing else {}
    taken: set[str] = set()
    plans: list[ModelPlan] = []
    for i, f in enumerate(files):
        if progress is not None:
            progress(i, len(files), f.path)
        old = by_path.get(os.path.normpath(f.path))
        p = _plan_one(f, options, backend, vram_budget, ram_budget, read)
        if p.spec is not None:
            p.planned = p.spec
            p.spec = _merge(p.spec, old, (generated or {}).get(f.path), p.notes)
            p.spec = _unique(p.spec, taken)
            p.name = p.spec.name
        plans.append(p)
    if progress is not None:
        progress(len(files), len(files), "")
    planned_paths = {os.path.normpath(f.path) for f in files}
    kept = [s for path, s in by_path.items() if path not in planned_paths and os.path.exists(path)]
    specs = [_unique(s, taken) for s in kept] + [p.spec for p in plans if p.spec is not None]
    base = existing.model_copy(update={"models": []}) if existing else Config()
    memory = base.memory.model_copy(
        update={
            k: v
            for k, v in (("vram_gb", options.force_vram_gb), ("ram_gb", options.force_ram_gb))
            if v is not None
        }
    )
    config = Config.model_validate(
        {
            **base.model_dump(),
            "memory": MemoryBudget.model_validate(memory.model_dump()).model_dump(),
            "models": [s.model_dump() for s in specs],
        }
    )
    return Plan(config, plans, backend, vram_budget, ram_budget)


def _unique(spec: ModelSpec, taken: set[str]) -> ModelSpec:
    """Two files may share a stem (same name in two folders): the later one gets -2, -3…"""
    name, n = spec.name, 2
    while name in taken or taken & set(spec.aliases):
        name, n = f"{spec.name}-{n}", n + 1
    taken.update([name, *spec.aliases])
    return spec if name == spec.name else spec.model_copy(update={"name": name})


def _merge(
    new: ModelSpec, old: ModelSpec | None, record: Mapping[str, Any] | None, notes: list[str]
) -> ModelSpec:
    if old is None:
        return new
    defaults = ModelSpec(name="x", model="x")
    update: dict[str, Any] = {}
    kept: list[str] = []
    for name in ModelSpec.model_fields:
        if name == "model":
            continue
        value = getattr(old, name)
        if name not in PLANNED:
            update[name] = value
        elif value != (record[name] if record is not None and name in record else getattr(defaults, name)):
            update[name] = value
            kept.append(name)
    if kept:
        notes.append(f"kept hand-edited {', '.join(kept)}")
    return new.model_copy(update=update)


def _plan_one(
    f: ModelFileLike, o: PlanOptions, backend: str, vram: int, ram: int, read: Callable[[str], GGUFInfo]
) -> ModelPlan:
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
