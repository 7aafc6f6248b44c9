"""The OpenAPI document, made to tell the truth: what each route takes and what it answers.

FastAPI documents a 422 for every route with parameters (this server never sends one: the
errors table turns validation errors into 400s) and knows nothing of the errors the routes
raise, nor of bodies a route reads itself. `install` rewrites the document once:

- every operation lists the errors it can answer (400, 401, 403, 404, 409, 413, 415, 503 as
  they apply) with the error envelope of its family (`/v1`: OpenAI's, `/api`: the spec's);
- the API key is a declared security scheme (Bearer or X-API-Key) on every operation;
- routes that read their body themselves declare it with `body_doc` (`openapi_extra`), so a
  schema-driven fuzzer and client generators see every body, and the HTTP guard reads the
  accepted media types from the same place.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")

_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_MANAGE_ERROR = {
    "type": "object",
    "required": ["error", "code", "details"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "details": {"type": "object"}},
}
_WHY = {
    "400": "Invalid input; the message and `param` (or `details.field`) name the field",
    "401": "Missing or wrong API key",
    "403": "A cross-site request from an Origin that is not allowed",
    "404": "Unknown model or resource",
    "409": "Already exists, or a conflicting operation is running",
    "413": "The request body is over the configured limit (max_body_mb, max_upload_mb)",
    "415": "The body's Content-Type is not one this route accepts",
    "503": "The model cannot load or fit now, or the server is restarting (Retry-After)",
}


#: A text/event-stream response, described per event (OpenAPI 3.1: the schema is one event).
SSE_EVENTS = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "string", "description": "one JSON chunk, an error object, or [DONE]"},
                "event": {"type": "string"},
                "id": {"type": "string"},
            },
        }
    }
}


def body_doc(
    schema: dict[str, Any] | None = None, *, yaml: bool = False, required: bool = True
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: JSON with `schema`, and YAML text."""
    content: dict[str, Any] = {"application/json": {"schema": schema or {"type": "object"}}}
    if yaml:
        content.update({t: {"schema": {"type": "string"}} for t in YAML_TYPES})
    return {"requestBody": {"required": required, "content": content}}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON schema with its definitions inlined (refs would not resolve here)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def answers(model: type[BaseModel] | None = None, **media: dict[str, Any]) -> dict[int | str, Any]:
    """`responses` for a route that returns a Response itself: the 200 body's model, or media types."""
    content = {"application/json": {"schema": schema_of(model)}} if model is not None else {}
    content.update(media)
    return {200: {"description": "Successful Response", "content": content}}


def _errors(method: str) -> list[str]:
    """The error statuses an operation can answer."""
    codes = ["400", "401", "404", "503"]
    if method in ("post", "put", "patch", "delete"):
        codes += ["403", "409", "413", "415"]
    return sorted(codes)


def rewrite(document: dict[str, Any]) -> dict[str, Any]:
    """The document with true error responses and the security scheme (see the module docstring)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["OpenAIError"] = _OPENAI_ERROR
    schemas["ManagementError"] = _MANAGE_ERROR
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "the API key, when one is required"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path, operations in document.get("paths", {}).items():
        ref = {
            "$ref": "#/components/schemas/" + ("OpenAIError" if path.startswith("/v1") else "ManagementError")
        }
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            for code in _errors(method):
                responses.setdefault(
                    code, {"description": _WHY[code], "content": {"application/json": {"schema": ref}}}
                )
            # No key needed when none is configured: the empty requirement says so.
            op["security"] = [{"bearer": []}, {"apiKey": []}, {}]
    return document


def install(app: FastAPI) -> None:
    """Make `app.openapi()` answer the rewritten document (built once, on first use)."""
    generate = app.openapi
    rewritten: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not rewritten:
            rewritten.append(rewrite(generate()))  # FastAPI caches the dict; rewritten in place
        return rewritten[0]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI documents replacing this method
