"""Configuration routes: read, replace, edit and check config.yaml (through `ConfigFile`).

Writes go to the file only (atomically, with a backup) and never to the running engine: the
answer says `needsRestart`, and the soft restart applies the file. `ConfigFile` lets one edit at
a time read-modify-write the file; its work runs in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from claracore.config import ModelSpec
from claracore.errors import InvalidRequestError
from claracore.manage import config_edit as edit
from claracore.manage.config_file import ConfigFile
from claracore.manage.config_schema import config_schema
from claracore.protocol import manage as m
from claracore.server.deps import ConfigFileDep, JsonBody, json_model, require_key
from claracore.server.openapi import answers, body_doc, schema_of

router = APIRouter(prefix="/api/config", dependencies=[Depends(require_key)])
AddModelBody = Annotated[m.AddModelRequest, Depends(json_model(m.AddModelRequest))]
AppendModelBody = Annotated[m.AppendModelRequest, Depends(json_model(m.AppendModelRequest))]

#: The body of a model edit: any subset of a model's fields (the config schema checks them).
MODEL_FIELDS = {"type": "object", "minProperties": 1, "properties": {k: {} for k in ModelSpec.model_fields}}
MAX_BODY = 4 << 20  # a config is kilobytes; anything this large is a mistake
_RESTART = "A soft restart is recommended to apply changes."


def _changed(message: str, restart: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "needsRestart": True, "restartMessage": f"{restart} {_RESTART}", **extra}


async def _config_body(request: Request) -> dict[str, Any] | str:
    """The whole configuration as sent: YAML text, or with a JSON Content-Type a parsed object."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidRequestError(f"the configuration is larger than {MAX_BODY >> 20} MB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the configuration must be UTF-8 text") from exc
    if not text.strip():
        raise InvalidRequestError("the request body is empty; send the whole configuration as YAML")
    if "json" not in request.headers.get("content-type", ""):
        return text
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError("the request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequestError("the configuration must be a JSON object")
    return parsed


@router.get("", responses=answers(None, **{"application/yaml": {"schema": {"type": "object"}}}))
async def get_config(file: ConfigFileDep) -> Response:
    """The YAML of the file on disk (or of the running config when there is none), key masked."""
    return Response(await asyncio.to_thread(file.show), media_type="application/yaml")


@router.post("", openapi_extra=body_doc(yaml=True))
async def post_config(request: Request, file: ConfigFileDep, dryRun: bool = False) -> dict[str, Any]:
    """Replace the whole file with YAML (or JSON) that validates; nothing is written otherwise.

    YAML is saved as sent, comments included. A masked `api_key` (as GET shows it) keeps the
    current key, and then the file is written from the parsed config instead. With `dryRun=1`
    nothing is written: the answer says it would validate (and warns about the files it names),
    or is the same 400 a save would get, each bad key in `details.errors`.
    """
    file.writable()
    data = await _config_body(request)
    if dryRun:
        config = await asyncio.to_thread(file.validated, data)
        report = await asyncio.to_thread(edit.validation_report, config)
        return {**report, "message": "The configuration is valid; nothing was written", "needsRestart": False}
    await asyncio.to_thread(file.replace, data)
    return _changed("Configuration updated successfully", "Configuration updated!")


@router.post("/model/{model_id:path}", openapi_extra=body_doc(MODEL_FIELDS))
async def update_model(model_id: str, fields: JsonBody, file: ConfigFileDep) -> dict[str, Any]:
    """Change some fields of one model (partial update, validated like the whole file)."""
    await asyncio.to_thread(file.update_model, model_id, fields)
    return _changed("Model parameters updated successfully", "Model configuration updated!", modelId=model_id)


@router.delete("/models/{model_id:path}")
async def delete_model(model_id: str, file: ConfigFileDep) -> dict[str, Any]:
    """Remove one model (by name or alias) from the file."""
    name = await asyncio.to_thread(file.delete_model, model_id)
    return _changed(f"Model '{name}' deleted successfully", "Model removed from configuration!", modelId=name)


async def _append(
    file: ConfigFile, path: str, name: str | None, options: m.AppendOptions | None, param: str
) -> dict[str, Any]:
    opts = options.model_dump(exclude_none=True) if options is not None else None
    entry = await asyncio.to_thread(edit.new_model, path, name=name, options=opts, param=param)
    await asyncio.to_thread(file.add_model, entry)
    return _changed(
        f"Model '{entry['name']}' added successfully", "Model added to configuration!", model=entry
    )


@router.post("/add-model", openapi_extra=body_doc(schema_of(m.AddModelRequest)))
async def add_model(body: AddModelBody, file: ConfigFileDep) -> dict[str, Any]:
    """Add one model file: `{"modelPath", "modelName"?}`; 409 when the name or file is taken."""
    return await _append(file, body.modelPath, body.modelName, body.options, "modelPath")


@router.post("/append-model", openapi_extra=body_doc(schema_of(m.AppendModelRequest)))
async def append_model(body: AppendModelBody, file: ConfigFileDep) -> dict[str, Any]:
    """Append one model file: `{"filePath", "options"?: {enableJinja, throughputFirst}}`."""
    return await _append(file, body.filePath, body.modelName, body.options, "filePath")


@router.get("/validate")
async def validate(file: ConfigFileDep) -> dict[str, Any]:
    """Check the file on disk (or the running config): errors with key paths, file warnings."""
    return await asyncio.to_thread(file.validate)


@router.post("/validate-models")
async def validate_models(file: ConfigFileDep) -> dict[str, Any]:
    """Which configured model files are missing, unreadable, or not a model they can load."""
    return await asyncio.to_thread(file.validate_models)


@router.post("/cleanup-duplicates")
async def cleanup_duplicates(file: ConfigFileDep) -> dict[str, Any]:
    """Drop entries that repeat an earlier model's name or file; the first one stays.

    Works on the file's raw YAML, so a file that fails validation only because of a repeated
    name is repaired. The result must validate, or nothing is written.
    """
    removed = await asyncio.to_thread(file.remove_duplicates)
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


@router.get("/schema")
async def schema() -> dict[str, Any]:
    """config.yaml's JSON schema: every key's type, default, valid range and meaning (for editors)."""
    return config_schema()
