"""After a download: track its folder, register the file (its metadata read by a scan), and,
unless asked not to, append it to the config with the settings the setup planner chooses.

The running server never changes behind the user's back: the config file gains the model and
the download says `needsRestart`; the soft restart (or the UI's prompt) applies it. Nothing here
fails the download: a file that was fetched and verified stays completed, and what could not be
done (no config file, the model does not fit, the name or file already configured) is said in
the result's `note`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from claracore.config import Config
from claracore.errors import ClaraCoreError
from claracore.manage import config_edit as edit
from claracore.manage import folders
from claracore.manage.config_file import ConfigFile
from claracore.manage.planner import GENERATED, Hardware, PlanOptions, plan
from claracore.manage.scanner import ScanResult
from claracore.manage.store import ModelFile, Store

log = logging.getLogger(__name__)


def register(
    store: Store,
    config_file: ConfigFile,
    *,
    model: Path,
    mmproj: Path | None,
    root: Path,
    name: str | None,
    configure: bool,
    hardware: Hardware,
    options: PlanOptions,
) -> dict[str, Any]:
    """Track `root` (unless a tracked folder covers it), scan it, and configure `model` (blocking).

    Returns the download's `model` record: {name, path, mmproj, configured, note}.
    """
    result: dict[str, Any] = {
        "name": None,
        "path": str(model),
        "mmproj": str(mmproj) if mmproj else None,
        "configured": False,
        "note": None,
    }
    try:
        scan = _scan(store, root)
    except ClaraCoreError as exc:
        result["note"] = f"downloaded, but the folder could not be scanned: {exc.message}"
        return result
    found = next((m for m in scan.models if Path(m.path) == model), None)
    if found is None:
        why = next((s.reason for s in scan.skipped if Path(s.path) == model), "the scan did not find it")
        result["note"] = f"downloaded, but not a model ClaraCore can serve: {why}"
        return result
    if mmproj is not None:
        found = dataclasses.replace(found, mmproj=str(mmproj))
    if not configure:
        result["note"] = "not added to the config (autoConfigure: false)"
        return result
    try:
        result["name"] = _configure(store, config_file, found, name, hardware, options)
        result["configured"] = True
    except ClaraCoreError as exc:
        result["note"] = f"not added to the config: {exc.message}"
    return result


def _scan(store: Store, root: Path) -> ScanResult:
    """Rescan the tracked folder that holds `root`, or start tracking `root` (recursively)."""
    for tracked in store.folders():
        inside = root == Path(tracked.path) or (tracked.recursive and root.is_relative_to(tracked.path))
        if inside:
            return folders.scan_one(store, tracked.path, tracked.recursive, add=False)
    _, scans = folders.add_folders(store, [str(root)], recursive=True)
    return scans[0]


def _configure(
    store: Store,
    config_file: ConfigFile,
    found: ModelFile,
    name: str | None,
    hardware: Hardware,
    options: PlanOptions,
) -> str:
    """Append the planner's entry for `found`; returns the name it got (a taken one gets -2, -3…)."""
    same = Path(found.path).resolve()
    for spec in config_file.current().models:
        if Path(spec.model).resolve() == same:  # a run stopped after configuring it, before saying so
            return spec.name
    result = plan([found], hardware, options)
    planned = result.models[0]
    if planned.spec is None:
        raise ClaraCoreError(f"it does not fit this machine: {planned.dropped}")
    entry = planned.spec.model_dump(mode="json", exclude_defaults=True)

    def change(config: Config, source: str, base: Path | None) -> tuple[Config, str]:
        taken = {key for spec in config.models for key in (spec.name, *spec.aliases)}
        wanted = name or str(entry["name"])
        unique, n = wanted, 2
        while unique in taken:
            unique, n = f"{wanted}-{n}", n + 1
        return edit.add_model(config, {**entry, "name": unique}, source=source, base_dir=base), unique

    chosen = config_file.edit(change)
    # Record what the planner chose, so a later regenerate knows these values are its own and not
    # hand edits (setup keeps hand edits).
    store.set_setting(GENERATED, {**(store.get_setting(GENERATED, {}) or {}), **result.record()})
    log.info("added %s to %s as '%s'", os.path.basename(found.path), config_file.source, chosen)
    return chosen
