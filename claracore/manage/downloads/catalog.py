"""A repository's GGUF files as models: split parts grouped, projectors offered, each judged
against this machine by the setup planner.

The verdict comes from the same planner `claracore setup` uses, so "fits on the GPU with 8192
tokens" here is what the config will say after the download. The planner needs the model's
shape (layers, heads, tensor sizes), which lives in the GGUF header: the header of one file per
repository (the smallest) is read with an HTTP range, and every other quantisation of the same
model is priced from it with its weights scaled to its size (they share the shape; only the
bytes per weight differ), marked `estimated`. Headers are cached per commit.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from claracore.errors import ClaraCoreError
from claracore.manage.downloads.hub import Hub, RemoteFile
from claracore.manage.planner import Hardware, ModelPlan, PlanOptions, plan
from claracore.modelfile.gguf import GGUFError, GGUFInfo, info_from_parts
from claracore.modelfile.kind import gguf_model_type
from claracore.modelfile.names import model_name, part_name, split_match
from claracore.modelfile.reader import Part, TruncatedHeadError, parse_stream
from claracore.protocol.downloads import Fit, RepoFiles, RepoModel
from claracore.units import GIB

HEAD_FIRST = 1 << 20  # most headers fit in a megabyte; big vocabularies take a few more
HEAD_MAX = 64 << 20
_CACHED_HEADS = 64
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9A-Z]+)+|BF16|F16|F32|FP16|FP32|MXFP4|TQ[12]_0)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_PREFERRED = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0")
_VERDICT_ORDER = ("gpu", "partial", "ram")


def quantization(filename: str) -> str | None:
    """The quantisation a file name says (`…-Q4_K_M.gguf` -> `Q4_K_M`), upper-case; the last wins."""
    stem = PurePosixPath(filename).name
    if m := split_match(Path(stem)):
        stem = m["stem"]
    found = _QUANT.findall(stem.removesuffix(".gguf").removesuffix(".GGUF"))
    return found[-1].upper() if found else None


def is_projector(path: str) -> bool:
    return "mmproj" in PurePosixPath(path).name.lower()


@dataclass
class Group:
    """One model in a repository: a single file, or every part of a split one (in order)."""

    files: list[RemoteFile]
    split: bool
    complete: bool

    @property
    def first(self) -> RemoteFile:
        return self.files[0]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def folder(self) -> str:
        return str(PurePosixPath(self.first.path).parent)


def split_paths(path: str) -> list[str]:
    """Every part of the split model `path` names (any of its parts), first part first."""
    m = split_match(Path(PurePosixPath(path).name))
    if m is None:
        return [path]
    folder = PurePosixPath(path).parent
    names = [part_name(m, i) for i in range(1, int(m["count"]) + 1)]
    return [str(folder / n) if str(folder) != "." else n for n in names]


def group_files(files: list[RemoteFile]) -> tuple[list[Group], list[RemoteFile]]:
    """The repository's GGUF models (split parts grouped) and its projector files, by path."""
    ggufs = sorted((f for f in files if f.path.lower().endswith(".gguf")), key=lambda f: f.path)
    projectors = [f for f in ggufs if is_projector(f.path)]
    groups: list[Group] = []
    splits: dict[tuple[str, str, str], dict[int, RemoteFile]] = {}
    for f in ggufs:
        if is_projector(f.path):
            continue
        m = split_match(Path(PurePosixPath(f.path).name))
        if m is None:
            groups.append(Group([f], split=False, complete=True))
            continue
        key = (str(PurePosixPath(f.path).parent), m["stem"], m["count"])
        splits.setdefault(key, {})[int(m["no"])] = f
    for (_, _, count), parts in splits.items():
        ordered = [parts[n] for n in sorted(parts)]
        complete = sorted(parts) == list(range(1, int(count) + 1))
        groups.append(Group(ordered, split=True, complete=complete))
    groups.sort(key=lambda g: g.first.path)
    return groups, projectors


@dataclass(frozen=True)
class _Remote:
    """A hub model as the planner sees a tracked file."""

    path: str
    name: str
    kind: str | None
    mmproj: str | None = None


class Catalog:
    """Lists repositories with fits verdicts; thread-safe (listings run in worker threads)."""

    def __init__(self, hub: Hub, hardware: Callable[[], Hardware]) -> None:
        self._hub = hub
        self._hardware = hardware
        self._heads: OrderedDict[tuple[str, str, str], Part] = OrderedDict()
        self._lock = threading.Lock()

    def listing(self, repo: str, revision: str, token: str | None, options: PlanOptions) -> RepoFiles:
        """GET /api/models/search/{repo}/files: models, projectors and the verdicts (blocking)."""
        commit, files = self._hub.files(repo, revision, token)
        groups, projectors = group_files(files)
        hardware = self._hardware()
        fits = self._fits(repo, commit, groups, token, hardware, options)
        models = [
            RepoModel(
                name=model_name(Path(PurePosixPath(g.first.path).name)),
                filename=g.first.path,
                files=[f.path for f in g.files],
                size=g.size,
                quantization=quantization(g.first.path),
                split=g.split,
                complete=g.complete,
                kind=kind,
                mmproj=[p.path for p in _near(g, projectors)],
                fit=fit,
                recommended=False,
            )
            for g, (fit, kind) in zip(groups, fits, strict=True)
        ]
        if best := _recommend(models):
            best.recommended = True
        return RepoFiles(
            repo=repo,
            revision=revision,
            commit=commit,
            models=models,
            mmproj=[{"name": p.path, "size": p.size} for p in projectors],
            hardware=_judged_on(hardware, options),
        )

    def _fits(
        self,
        repo: str,
        commit: str,
        groups: list[Group],
        token: str | None,
        hardware: Hardware,
        options: PlanOptions,
    ) -> list[tuple[Fit, str | None]]:
        usable = [g for g in groups if g.complete]
        if not usable:
            return [(Fit(verdict="unknown", reason="the split model misses parts"), None) for _ in groups]
        reference = min(usable, key=lambda g: (g.split, g.size))
        try:
            info = self._info(repo, commit, reference, token)
        except ClaraCoreError as exc:
            reason = f"cannot read the model's header: {exc.message}"
            return [(Fit(verdict="unknown", reason=reason), None) for _ in groups]
        kind: str = gguf_model_type(info)
        out: list[tuple[Fit, str | None]] = []
        for g in groups:
            if not g.complete:
                out.append((Fit(verdict="unknown", reason="the split model misses parts"), kind))
                continue
            sized = info if g is reference else _scaled(info, g.size)
            remote = _Remote(path=g.first.path, name=model_name(Path(g.first.path)), kind=kind)
            result = plan([remote], hardware, options, read=lambda _path, i=sized: i)  # type: ignore[misc]
            out.append((_verdict(result.models[0], result.backend, estimated=g is not reference), kind))
        return out

    def _info(self, repo: str, commit: str, group: Group, token: str | None) -> GGUFInfo:
        heads = [self._head(repo, commit, f, token) for f in group.files]
        later = [(Path(f.path), h) for f, h in zip(group.files[1:], heads[1:], strict=True)]
        return info_from_parts(Path(group.first.path), heads[0], later)

    def _head(self, repo: str, commit: str, f: RemoteFile, token: str | None) -> Part:
        key = (repo, commit, f.path)
        with self._lock:
            if key in self._heads:
                self._heads.move_to_end(key)
                return self._heads[key]
        url = self._hub.file_url(repo, f.path, commit)
        length = min(HEAD_FIRST, f.size)
        while True:
            data = self._hub.read_head(url, token, length)
            try:
                head = parse_stream(io.BytesIO(data), f.size, Path(f.path))
                break
            except TruncatedHeadError:
                if len(data) < length or length >= min(f.size, HEAD_MAX):
                    raise GGUFError(
                        f.path, f"the header is cut short or larger than {HEAD_MAX >> 20} MiB"
                    ) from None
                length = min(length * 4, f.size, HEAD_MAX)
        with self._lock:
            self._heads[key] = head
            while len(self._heads) > _CACHED_HEADS:
                self._heads.popitem(last=False)
        return head


def _judged_on(hardware: Hardware, options: PlanOptions) -> dict[str, int | str]:
    """The machine the verdicts assumed: the detected one, with the saved settings' overrides."""
    vram, ram = options.force_vram_gb, options.force_ram_gb
    return {
        "backend": options.force_backend or hardware.backend,
        "vramBytes": hardware.vram_bytes if vram is None else int(vram * GIB),
        "ramBytes": hardware.ram_bytes if ram is None else int(ram * GIB),
    }


def _scaled(info: GGUFInfo, size: int) -> GGUFInfo:
    """`info` for another quantisation of the same model, `size` bytes in all."""
    factor = max(size - info.data_offset, 1) / max(info.tensor_bytes, 1)
    return replace(
        info,
        layer_bytes=tuple(int(b * factor) for b in info.layer_bytes),
        other_bytes=int(info.other_bytes * factor),
        output_bytes=int(info.output_bytes * factor),
        token_embd_bytes=int(info.token_embd_bytes * factor),
        tensor_bytes=int(info.tensor_bytes * factor),
        file_size=size,
    )


def _verdict(p: ModelPlan, backend: str, *, estimated: bool) -> Fit:
    if p.spec is None:
        return Fit(verdict="too_big", reason=p.dropped, notes=p.notes, estimated=estimated)
    layers = p.spec.gpu_layers
    verdict = "gpu" if layers == -1 and backend != "cpu" else "partial" if layers > 0 else "ram"
    return Fit(
        verdict=verdict,  # type: ignore[arg-type]  # one of FitVerdict
        contextLength=p.spec.context_length,
        gpuLayers=layers,
        vramBytes=p.estimate.vram_bytes if p.estimate else None,
        ramBytes=p.estimate.ram_bytes if p.estimate else None,
        notes=p.notes,
        estimated=estimated,
    )


def _near(g: Group, projectors: list[RemoteFile]) -> list[RemoteFile]:
    """The projectors in the model's folder, else every projector of the repository."""
    near = [p for p in projectors if str(PurePosixPath(p.path).parent) == g.folder]
    return near or projectors


def _recommend(models: list[RepoModel]) -> RepoModel | None:
    """The one to pick without thinking: the best place it runs (GPU, then GPU + RAM, then RAM);
    there a Q4_K_M (the usual sweet spot of size and quality), else the largest."""
    for verdict in _VERDICT_ORDER:
        fitting = [m for m in models if m.fit.verdict == verdict and m.complete]
        if not fitting:
            continue
        for quant in _PREFERRED:
            if chosen := [m for m in fitting if m.quantization == quant]:
                return chosen[0]
        return max(fitting, key=lambda m: m.size)
    return None
