"""The whole plan: tracked model files + hardware + options -> a config.

Pure apart from reading GGUF headers (never weights), so it is tested with tiny models and a
machine described by numbers. Each file is sized on its own (`fit`); this module budgets the
machine and folds the results into the existing config, keeping what the user edited by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from claracore.config import Config, MemoryBudget, ModelSpec
from claracore.manage.planner.fit import ModelFileLike, ModelPlan, plan_model
from claracore.manage.planner.options import Hardware, PlanOptions
from claracore.modelfile.gguf import GGUFInfo, read_gguf
from claracore.units import GIB

GENERATED = "planner.generated"  # store setting: `Plan.record()` of the last config written
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
        p = plan_model(f, options, backend, vram_budget, ram_budget, read)
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
