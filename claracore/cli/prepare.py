"""The commands that get a machine ready to serve: doctor, system, scan, setup, convert-embedding.

None of them loads a model; they check the llama.cpp build and the hardware, find the model
files, plan a config that fits, and convert what llama.cpp cannot read yet. Their heavier
modules are imported inside each command, so `claracore serve` and `chat` never pay for them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from claracore.cli.common import CliError, command_config, human_size, log, say
from claracore.manage.defaults import data_dir, find_config
from claracore.manage.store import Store
from claracore.units import GIB, MIB


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report the llama.cpp build, the GPUs, whether offload works and the config's RPC workers;
    always exit 0."""
    from claracore.hardware import workers
    from claracore.hardware.doctor import diagnose, render

    for line in render(diagnose()):
        say(line)
    for line in workers.render(command_config(args)[0]):
        say(line)
    return 0


def cmd_system(args: argparse.Namespace) -> int:
    """Print what the hardware probes found (what the planner and /api/system/detection use)."""
    import json

    from claracore.hardware.probe import detect, render

    found = detect()
    if args.json:
        say(json.dumps({"specs": found.specs_json(), "detection": found.detection_json()}, indent=2))
    else:
        for line in render(found):
            say(line)
    return 0


def cmd_convert_embedding(args: argparse.Namespace) -> int:
    """Convert a sentence-transformers BERT folder to GGUF (cached) and print the file's path."""
    from claracore.manage.convert import cached_conversion

    cache = Path(args.out) if args.out else data_dir(os.environ) / "converted"
    try:
        path = cached_conversion(Path(args.folder), cache)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    say(str(path))
    return 0


def _scan_store() -> Store | None:
    """The data directory's store, so a rescan reads only changed files; None when unavailable."""
    import sqlite3

    try:
        return Store(data_dir(os.environ) / "claracore.db")
    except (OSError, sqlite3.Error) as exc:
        log.warning("scanning without the cache: %s", exc)
        return None


def cmd_scan(args: argparse.Namespace) -> int:
    """List the models in DIR (and why other model-like files were skipped)."""
    from claracore.manage.scanner import scan_folder

    folder = Path(args.folder).expanduser().resolve()
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist")

    def progress(done: int, total: int, _path: str) -> None:
        if done == total or done % 100 == 0:
            say(f"\rscanning {folder}: {done}/{total} files", err=True, end="\n" if done == total else "")

    store = None if args.no_cache else _scan_store()
    try:
        result = scan_folder(folder, recursive=args.recursive, store=store, progress=progress)
    except OSError as exc:
        raise CliError(f"cannot list {folder}: {exc.strerror or exc}") from None
    finally:
        if store is not None:
            store.close()

    def size(n: int) -> str:
        return human_size(n) if n >= MIB else f"{n / 1024:.0f} KiB"

    rows = [(m.name, m.kind or "", size(m.size), m.path) for m in result.models]
    if rows:
        widths = [max(len(r[i]) for r in [("NAME", "TYPE", "SIZE", "FILE"), *rows]) for i in range(3)]
        for row in [("NAME", "TYPE", "SIZE", "FILE"), *rows]:
            say("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    say(f"{len(result.models)} model(s) in {folder}")
    if result.skipped:
        say(f"skipped {len(result.skipped)}:")
        for skip in result.skipped:
            say(f"  {skip.path}: {skip.reason}")
    return 0


class _SetupLines:
    """The setup's progress as lines on stderr: which folder is scanned, how far the plan is."""

    def __init__(self) -> None:
        self._phase = ""
        self._folder = ""

    def phase(self, name: str, step: str) -> None:
        self._phase = name
        if name == "detecting":
            say("detecting hardware", err=True)

    def folder(self, path: str) -> None:
        self._folder = path

    def files(self, done: int, total: int, path: str) -> None:
        end = "\n" if done == total else ""
        if self._phase == "scanning":
            say(f"\rscanning {self._folder}: {done}/{total} files", err=True, end=end)
        elif self._phase == "planning":
            say(f"\rplanning: {done}/{total} models", err=True, end=end)

    def skipped(self, folder: str, why: str) -> None:
        say(f"skipping {folder}: {why}", err=True)


def cmd_setup(args: argparse.Namespace) -> int:
    """Scan (DIRs, else the tracked folders), detect the hardware, plan and write config.yaml.

    DIRs become tracked folders, so the server's regenerate-from-db plans the same models later.
    Hand edits of models already in the file are kept, as the server's regeneration does.
    """
    from claracore.manage.config_file import ConfigFile
    from claracore.manage.planner import PlanOptions
    from claracore.manage.setup import run_setup

    raw = {
        "forceBackend": args.force_backend,
        "forceVRAM": args.force_vram,
        "forceRAM": args.force_ram,
        "throughputFirst": args.throughput_first or None,
        "minContext": args.min_context,
        "preferredContext": args.prefer_context,
    }
    options = PlanOptions.from_api({k: v for k, v in raw.items() if v is not None})
    path = find_config(args.config, os.environ, Path.cwd()) or data_dir(os.environ) / "config.yaml"
    folders = [Path(d).expanduser().resolve() for d in args.dirs]
    for folder in folders:
        if not folder.is_dir():
            raise CliError(f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist")
    store = Store(data_dir(os.environ) / "claracore.db")
    try:
        for folder in folders:
            if store.folder(str(folder)) is None:
                store.add_folder(str(folder), recursive=True)
        if not [f for f in store.folders() if f.enabled]:
            raise CliError("no model folders: name one (claracore setup DIR) or track one in the server")
        done = run_setup(store, ConfigFile(path), options, progress=_SetupLines())
    finally:
        store.close()
    result = done.plan
    vram, ram = result.vram_budget / GIB, result.ram_budget / GIB
    say(f"backend {result.backend}, budget {vram:.1f} GiB VRAM + {ram:.1f} GiB RAM")
    for m in result.models:
        if m.dropped:
            say(f"  {m.name}: dropped: {m.dropped}")
        elif m.spec is not None:
            s = m.spec
            cost = f", ~{human_size(m.estimate.total)}" if m.estimate is not None else ""
            say(
                f"  {s.name} ({m.type}): context {s.context_length or 'auto'}, gpu_layers {s.gpu_layers}, "
                f"kv {s.cache_type_k}, parallel {s.parallel}{cost}"
            )
    say(f"wrote {path} ({len(done.config.models)} model(s))")
    return 0
