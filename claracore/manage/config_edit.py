"""Edits of a Config that the management API makes: pure functions, each returning a new Config.

Every edit goes back through `parse_config` on the whole result, so an edit
can never produce a config that `claracore serve` would refuse to start with; the routes only
write the file when the edit returned. Nothing here touches the running engine or the disk,
except `check_model_file`, which reads model file headers for the validation reports; saving
is `config_file.ConfigFile`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claracore.config import Config, ModelSpec, parse_config
from claracore.errors import ConfigError, ConflictError, InvalidRequestError, ModelNotFoundError
from claracore.modelfile.gguf import GGUFError, read_gguf
from claracore.modelfile.kind import infer_model_type
from claracore.modelfile.names import model_name


def validated(data: Mapping[str, Any] | str, *, source: str, base_dir: Path | None) -> Config:
    """`parse_config` (whose schema bounds every number): the one gate every write passes.

    Raises ConfigError."""
    return parse_config(dict(data) if isinstance(data, Mapping) else data, source=source, base_dir=base_dir)


def as_data(config: Config) -> dict[str, Any]:
    """The config as plain data without defaults: what an edit changes before revalidating."""
    return config.model_dump(mode="json", exclude_defaults=True)


def model_index(config: Config, model_id: str) -> int:
    """Index of the model named `model_id` (or with it as an alias). Raises ModelNotFoundError."""
    for i, spec in enumerate(config.models):
        if spec.name == model_id or model_id in spec.aliases:
            return i
    raise ModelNotFoundError(model_id, config.names())


def update_model(
    config: Config, model_id: str, fields: object, *, source: str = "<edit>", base_dir: Path | None = None
) -> Config:
    """`config` with some fields of one model replaced; unknown or bad fields are a ConfigError
    naming ``models.N.field``, an empty or non-object update an InvalidRequestError."""
    if not isinstance(fields, dict):
        raise InvalidRequestError("the request body must be a JSON object of model fields")
    if not fields:
        raise InvalidRequestError("nothing to update: the request body has no fields")
    i = model_index(config, model_id)
    data = as_data(config)
    data["models"][i] = {**data["models"][i], **fields}
    return validated(data, source=source, base_dir=base_dir)


def delete_model(config: Config, model_id: str) -> tuple[Config, ModelSpec]:
    """`config` without the model `model_id` (name or alias), and the removed model."""
    i = model_index(config, model_id)
    removed = config.models[i]
    return config.model_copy(update={"models": [*config.models[:i], *config.models[i + 1 :]]}), removed


def new_model(
    path: str,
    *,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
    param: str = "modelPath",
) -> dict[str, Any]:
    """The config entry for one model file or folder, its type read from the file.

    A Whisper folder (`model.bin`) and a Piper voice (`.onnx` + `.onnx.json`) are models too.
    `options` are the spec's append options: `throughputFirst` decodes more sequences together
    (parallel 8 instead of 4); `enableJinja` is accepted for compatibility, since chat templates
    are always rendered with Jinja here. Raises InvalidRequestError for a missing or unusable file.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidRequestError("a model file path is required", param=param)
    file = Path(path.strip()).expanduser()
    if not file.is_absolute():
        raise InvalidRequestError(f"the model path must be absolute, got {path!r}", param=param)
    if not file.exists():
        raise InvalidRequestError(f"model file not found: {file}", param=param)
    opts = dict(options or {})
    for key, value in opts.items():
        if key not in ("enableJinja", "throughputFirst"):
            raise InvalidRequestError(f"unknown option '{key}'", param=f"options.{key}")
        if not isinstance(value, bool):
            raise InvalidRequestError(f"options.{key} must be true or false", param=f"options.{key}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidRequestError("the model name must be a non-empty string", param="modelName")
    try:
        kind = infer_model_type(file)
    except GGUFError as exc:
        raise InvalidRequestError(f"not a usable model: {exc.message}", param=param) from exc
    entry: dict[str, Any] = {
        "name": name.strip() if name else (file.name.lower() if file.is_dir() else model_name(file)),
        "model": str(file),
        "type": kind,
    }
    if opts.get("throughputFirst"):
        entry["parallel"] = 8
    return entry


def add_model(
    config: Config, entry: Mapping[str, Any], *, source: str = "<edit>", base_dir: Path | None = None
) -> Config:
    """`config` with `entry` appended. ConflictError when its name (or an alias) is taken or its
    file is already configured; ConfigError when the entry does not validate."""
    name = str(entry.get("name", ""))
    taken = {key for spec in config.models for key in (spec.name, *spec.aliases)}
    if name in taken:
        raise ConflictError(f"a model named '{name}' already exists", details={"modelId": name})
    file = _resolved(str(entry.get("model", "")), base_dir)
    for spec in config.models:
        if _resolved(spec.model, base_dir) == file:
            raise ConflictError(
                f"'{file}' is already configured as model '{spec.name}'",
                details={"modelId": spec.name, "path": str(file)},
            )
    data = as_data(config)
    data.setdefault("models", []).append(dict(entry))
    return validated(data, source=source, base_dir=base_dir)


def remove_duplicates(raw: object, *, base_dir: Path | None) -> tuple[object, list[dict[str, Any]]]:
    """The raw config mapping without model entries that repeat an earlier entry's name or file.

    Works on the parsed YAML rather than a Config because a config with a repeated name does not
    validate, and repairing such a file is the point. The first entry of each wins. Returns the
    new mapping and one ``{index, name, model, reason}`` per removed entry.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        return raw, []
    names: dict[str, int] = {}
    files: dict[Path, int] = {}
    kept: list[Any] = []
    removed: list[dict[str, Any]] = []
    for i, entry in enumerate(raw["models"]):
        if not isinstance(entry, dict):
            kept.append(entry)
            continue
        name, model = entry.get("name"), entry.get("model")
        file = _resolved(model, base_dir) if isinstance(model, str) and model.strip() else None
        reason = None
        if isinstance(name, str) and name.strip() in names:
            reason = f"same name as models.{names[name.strip()]}"
        elif file is not None and file in files:
            reason = f"same file as models.{files[file]}"
        if reason:
            removed.append({"index": i, "name": name, "model": model, "reason": reason})
            continue
        if isinstance(name, str):
            names.setdefault(name.strip(), i)
        if file is not None:
            files.setdefault(file, i)
        kept.append(entry)
    return {**raw, "models": kept}, removed


def _resolved(path: str, base_dir: Path | None) -> Path:
    """A model path as the same file is named however it was written (relative, ~, symlink)."""
    file = Path(path).expanduser()
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    return Path(os.path.realpath(file))


def check_model_file(path: str) -> dict[str, Any]:
    """What is on disk at a model path: exists, readable, valid (the format reads), type, error."""
    file = Path(path)
    report: dict[str, Any] = {
        "exists": file.exists(),
        "readable": False,
        "valid": False,
        "type": None,
        "error": None,
    }
    if not report["exists"]:
        report["error"] = "file not found"
        return report
    report["readable"] = os.access(file, os.R_OK | (os.X_OK if file.is_dir() else 0))
    if not report["readable"]:
        report["error"] = "permission denied"
        return report
    try:
        report["type"] = infer_model_type(file)
    except GGUFError as exc:
        report["error"] = exc.reason
        return report
    except OSError as exc:  # a read error below the GGUF parser (EIO, a vanished file)
        report["error"] = exc.strerror or str(exc)
        return report
    report["valid"] = True
    return report


def check_new_files(before: Config | None, after: Config, *, source: str) -> None:
    """Refuse a write whose new or changed model files cannot be served, as append-model does.

    Only paths (with their type) that `before` did not have are read (a model whose file went
    missing may still be edited); a file must exist and read as a model, and a speech type
    (stt, tts) must match what the file is. Raises ConfigError naming ``models.N.model`` (or ``.mmproj``).
    """
    known = {(spec.model, spec.type) for spec in before.models} if before is not None else set()
    known_mmproj = {spec.mmproj for spec in before.models} if before is not None else set()
    errors: list[dict[str, str]] = []
    for i, spec in enumerate(after.models):
        if (spec.model, spec.type) not in known:
            report = check_model_file(spec.model)
            kinds = {spec.type, report["type"]}
            if not report["valid"]:
                why = f"{spec.model}: {report['error']}"
            elif spec.type is not None and kinds & {"stt", "tts"} and len(kinds) > 1:
                why = f"{spec.model} is a {report['type']} model, not {spec.type}"
            else:
                why = ""
            if why:
                errors.append({"path": f"models.{i}.model", "message": why})
        if spec.mmproj is not None and spec.mmproj not in known_mmproj and not Path(spec.mmproj).is_file():
            errors.append({"path": f"models.{i}.mmproj", "message": f"{spec.mmproj}: file not found"})
    if errors:
        lines = [
            f"{source}: {e['path']} ({after.models[int(e['path'].split('.')[1])].name}): {e['message']}"
            for e in errors
        ]
        raise ConfigError("\n".join(lines), path=source, errors=errors)


def validation_report(config: Config) -> dict[str, Any]:
    """GET /api/config/validate's body for a config that parsed (so it has no errors left, since
    the schema bounds every number): warnings about the files it names."""
    warnings: list[str] = []
    for i, spec in enumerate(config.models):
        where = f"models.{i} ('{spec.name}')"
        for key in ("model", "mmproj"):
            path = getattr(spec, key)
            if path is None:
                continue
            if not Path(path).exists():
                warnings.append(f"{where}.{key}: Model file path may not exist: {path}")
            elif key == "model":
                warnings.extend(_file_warnings(where, spec))
    return {"valid": True, "errors": [], "warnings": warnings}


def _file_warnings(where: str, spec: ModelSpec) -> list[str]:
    report = check_model_file(spec.model)
    if not report["valid"]:
        return [f"{where}.model: cannot be used: {report['error']}"]
    if not spec.model.lower().endswith(".gguf"):
        return []
    try:
        trained = read_gguf(spec.model).context_length
    except GGUFError as exc:  # pragma: no cover - check_model_file read it a moment ago
        return [f"{where}.model: cannot be read: {exc.reason}"]
    if spec.context_length is not None and trained and spec.context_length > trained:
        return [
            f"{where}.context_length: {spec.context_length} is above the {trained} tokens the model "
            "was trained with; output past that length degrades"
        ]
    return []
