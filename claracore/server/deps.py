"""Typed dependencies, declared once: the app's state and services, the API-key check, JSON bodies.

A route names what it needs by type (`eng: EngineDep`, `body: ...`) and never reaches into
`request.app.state` itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from claracore.engine import AsyncEngine
from claracore.errors import InvalidRequestError
from claracore.manage.config_file import ConfigFile
from claracore.manage.downloads import DownloadManager
from claracore.manage.settings import Settings
from claracore.manage.store import Store
from claracore.protocol.validation import parse
from claracore.server.errors import Unauthorized
from claracore.server.state import AppState

M = TypeVar("M", bound=BaseModel)


def app_state(request: Request) -> AppState:
    state = request.app.state
    assert isinstance(state, AppState), "the app was not built by create_app"
    return state


def _engine(request: Request) -> AsyncEngine:
    return app_state(request).engine


def _store(request: Request) -> Store:
    return app_state(request).store


def _config_file(request: Request) -> ConfigFile:
    return app_state(request).config_file


def _settings(request: Request) -> Settings:
    return app_state(request).settings


def _downloads(request: Request) -> DownloadManager:
    return app_state(request).downloads


StateDep = Annotated[AppState, Depends(app_state)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
StoreDep = Annotated[Store, Depends(_store)]
ConfigFileDep = Annotated[ConfigFile, Depends(_config_file)]
SettingsDep = Annotated[Settings, Depends(_settings)]
DownloadsDep = Annotated[DownloadManager, Depends(_downloads)]


async def require_key(request: Request) -> None:
    """Every /v1 and /api router carries this: the API key, when one is required (server.auth).

    The HTTP guard (server.guard) has already checked it before the body was read; this second
    look keeps a router safe wherever it is mounted."""
    if not app_state(request).auth.allows(request.headers):
        raise Unauthorized("a valid API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)")


async def json_body(request: Request) -> Any:
    """The body as JSON, {} when empty (the guard has refused any type but JSON, and checked it).

    Invalid JSON is a 400 INVALID_JSON, as the guard answers it.
    """
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the request body is not valid JSON") from exc


async def json_object(request: Request, model: type[M]) -> M:
    """The body (read as `json_body` does) validated as `model`; a body that is not an object,
    or a bad field, is a 400 naming it."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return parse(model, data)


def json_model(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency giving the body as `json_object` reads it.

    The checks live in `json_object`, not in this closure: the closure is built when a route
    module is imported, and code built then is out of reach of mutation testing (mutmut switches
    to a mutant only for calls made at run time), so no test could be seen to guard it.
    """

    async def dependency(request: Request) -> M:
        return await json_object(request, model)

    return dependency


JsonBody = Annotated[Any, Depends(json_body)]
