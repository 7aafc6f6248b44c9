"""Configuration routes: read, replace, edit and check config.yaml.

Writes go to the file only (atomically, with a backup) and never to the running engine: the
answer says `needsRestart`, and the soft restart applies the file. Writes are serialised by one
lock per app, so two edits cannot both read the old file and lose one of them. File work runs
in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from claracore.config import Config, dump_config, load_config, save_config
from claracore.engine import AsyncEngine
from claracore.errors import ConfigError, InvalidRequestError
from claracore.fsutil import atomic_write, backup
from claracore.manage import config_edit as edit
from claracore.server.deps import engine, require_key

router = APIRouter(prefix="/api/config", dependencies=[Depends(require_key)])
Engine = Annotated[AsyncEngine, Depends(engine)]

MAX_BODY = 4 << 20  # a config is kilobytes; anything this large is a mistake
_API_KEY_LINE = re.compile(r"^api_key[ \t]*:.*$", re.MULTILINE)
_RESTART = "A soft restart is recommended to apply changes."


def _changed(message: str, restart: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "needsRestart": True, "restartMessage": f"{restart} {_RESTART}", **extra}


def _path(request: Request) -> Path | None:
    path: Path | None = request.app.state.config_path
    return Path(path) if path is not None else None


def _writable(request: Request) -> Path:
    """The config file to write, or NoConfigFileError (409) when the server has none."""
    path = _path(request)
    if path is None:
        raise edit.NoConfigFileError()
    return path


def _lock(request: Request) -> asyncio.Lock:
    """The app's write lock, made on first use (no await between the check and the set)."""
    lock: asyncio.Lock | None = getattr(request.app.state, "config_lock", None)
    if lock is None:
        lock = request.app.state.config_lock = asyncio.Lock()
    return lock


def _current(path: Path | None, eng: AsyncEngine) -> Config:
    """The config edits start from: the file when it exists, else the one the engine runs."""
    if path is not None and path.exists():
        return load_config(path)
    return eng.config


def _base_dir(path: Path | None) -> Path | None:
    return path.absolute().parent if path is not None else None


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the request body is not valid JSON") from exc


def _masked_text(text: str, key: str) -> str:
    """The file's own text (comments kept) with the API key line masked; a dump if that fails."""
    masked = _API_KEY_LINE.sub(f'api_key: "{edit.MASK}"', text)
    if key and key in masked:
        raise ValueError("the key survived masking")
    return masked


@router.get("")
async def get_config(request: Request, eng: Engine) -> Response:
    """The YAML of the file on disk (or of the running config when there is none), key masked."""
    path = _path(request)

    def read() -> str:
        if path is None or not path.exists():
            config = eng.config
            if config.api_key:
                config = config.model_copy(update={"api_key": edit.MASK})
            return dump_config(config)
        text = path.read_text(encoding="utf-8")
        try:
            key = load_config(path).api_key
        except ConfigError:  # a broken file is still shown, so that it can be fixed
            key = ""
        try:
            return _masked_text(text, key)
        except ValueError:
            return dump_config(load_config(path).model_copy(update={"api_key": edit.MASK}))

    return Response(await asyncio.to_thread(read), media_type="application/yaml")


@router.post("")
async def post_config(request: Request, eng: Engine) -> dict[str, Any]:
    """Replace the whole file with YAML (or JSON) that validates; nothing is written otherwise.

    YAML is saved as sent, comments included. A masked `api_key` (as GET shows it) keeps the
    current key, and then the file is written from the parsed config instead.
    """
    path = _writable(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidRequestError(f"the configuration is larger than {MAX_BODY >> 20} MB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the configuration must be UTF-8 text") from exc
    if not text.strip():
        raise InvalidRequestError("the request body is empty; send the whole configuration as YAML")
    is_json = "json" in request.headers.get("content-type", "")
    data: dict[str, Any] | str = text
    if is_json:
        parsed = await _json(request)
        if not isinstance(parsed, dict):
            raise InvalidRequestError("the configuration must be a JSON object")
        data = parsed
    source = str(path)
    async with _lock(request):

        def write() -> None:
            config = edit.validated(data, source=source, base_dir=_base_dir(path))
            if config.api_key == edit.MASK:
                current = load_config(path).api_key if path.exists() else eng.config.api_key
                save_config(config.model_copy(update={"api_key": current}), path)
            elif isinstance(data, str):
                backup(path)
                atomic_write(path, data)
            else:
                save_config(config, path)

        await asyncio.to_thread(write)
    return _changed("Configuration updated successfully", "Configuration updated!")


async def _edit(request: Request, eng: Engine, change: Any) -> Any:
    """Run `change(config, source, base_dir) -> (new config, result)` under the lock and save."""
    path = _writable(request)
    async with _lock(request):

        def run() -> Any:
            new, result = change(_current(path, eng), str(path), _base_dir(path))
            save_config(new, path)
            return result

        return await asyncio.to_thread(run)


@router.post("/model/{model_id:path}")
async def update_model(model_id: str, request: Request, eng: Engine) -> dict[str, Any]:
    """Change some fields of one model (partial update, validated like the whole file)."""
    fields = await _json(request)

    def change(config: Config, source: str, base_dir: Path | None) -> tuple[Config, None]:
        return edit.update_model(config, model_id, fields, source=source, base_dir=base_dir), None

    await _edit(request, eng, change)
    return _changed("Model parameters updated successfully", "Model configuration updated!", modelId=model_id)


@router.delete("/models/{model_id:path}")
async def delete_model(model_id: str, request: Request, eng: Engine) -> dict[str, Any]:
    """Remove one model (by name or alias) from the file."""

    def change(config: Config, source: str, base_dir: Path | None) -> tuple[Config, str]:
        new, removed = edit.delete_model(config, model_id)
        return new, removed.name

    name = await _edit(request, eng, change)
    return _changed(f"Model '{name}' deleted successfully", "Model removed from configuration!", modelId=name)


async def _append(request: Request, eng: Engine, path_key: str) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("options must be an object", param="options")
    entry = await asyncio.to_thread(
        edit.new_model, body.get(path_key, ""), name=body.get("modelName"), options=options, param=path_key
    )

    def change(config: Config, source: str, base_dir: Path | None) -> tuple[Config, None]:
        return edit.add_model(config, entry, source=source, base_dir=base_dir), None

    await _edit(request, eng, change)
    return _changed(
        f"Model '{entry['name']}' added successfully", "Model added to configuration!", model=entry
    )


@router.post("/add-model")
async def add_model(request: Request, eng: Engine) -> dict[str, Any]:
    """Add one model file: `{"modelPath", "modelName"?}`; 409 when the name or file is taken."""
    return await _append(request, eng, "modelPath")


@router.post("/append-model")
async def append_model(request: Request, eng: Engine) -> dict[str, Any]:
    """Append one model file: `{"filePath", "options"?: {enableJinja, throughputFirst}}`."""
    return await _append(request, eng, "filePath")


@router.get("/validate")
async def validate(request: Request, eng: Engine) -> dict[str, Any]:
    """Check the file on disk (or the running config): errors with key paths, file warnings."""
    path = _path(request)

    def check() -> dict[str, Any]:
        try:
            config = _current(path, eng)
        except ConfigError as exc:
            errors = [f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in exc.errors]
            return {"valid": False, "errors": errors or [exc.message], "warnings": []}
        return edit.validation_report(config)

    return await asyncio.to_thread(check)


@router.post("/validate-models")
async def validate_models(request: Request, eng: Engine) -> dict[str, Any]:
    """Which configured model files are missing, unreadable, or not a model they can load."""
    path = _path(request)

    def check() -> dict[str, Any]:
        config = _current(path, eng)
        models = [{"name": s.name, "path": s.model, **edit.check_model_file(s.model)} for s in config.models]
        missing = [m["name"] for m in models if not m["exists"]]
        unreadable = [m["name"] for m in models if m["exists"] and not m["valid"]]
        return {
            "valid": not missing and not unreadable,
            "total": len(models),
            "validCount": len(models) - len(missing) - len(unreadable),
            "missing": missing,
            "unreadable": unreadable,
            "models": models,
        }

    return await asyncio.to_thread(check)


@router.post("/cleanup-duplicates")
async def cleanup_duplicates(request: Request, eng: Engine) -> dict[str, Any]:
    """Drop entries that repeat an earlier model's name or file; the first one stays.

    Works on the file's raw YAML, so a file that fails validation only because of a repeated
    name is repaired. The result must validate, or nothing is written.
    """
    path = _writable(request)
    async with _lock(request):

        def run() -> list[dict[str, Any]]:
            if path.exists():
                try:
                    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
                except yaml.YAMLError as exc:
                    load_config(path)  # raises the ConfigError that names the line
                    raise ConfigError(str(exc), path=str(path)) from exc  # pragma: no cover
            else:
                raw = edit.as_data(eng.config)
            data, removed = edit.remove_duplicates(raw, base_dir=_base_dir(path))
            if removed:
                assert isinstance(data, dict)  # entries are only removed from a mapping's list
                config = edit.validated(data, source=str(path), base_dir=_base_dir(path))
                save_config(config, path)
            return removed

        removed = await asyncio.to_thread(run)
    if not removed:
        return {
            "message": "No duplicate models found",
            "needsRestart": False,
            "removed": [],
            "removedCount": 0,
        }
    return _changed(
        f"Removed {len(removed)} duplicate model(s)",
        "Duplicates removed from configuration!",
        removed=removed,
        removedCount=len(removed),
    )
