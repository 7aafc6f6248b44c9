"""Typed dependencies: the engine, and the API-key check every /v1 and /api route carries."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from claracore.engine import AsyncEngine
from claracore.manage.store import Store
from claracore.server.errors import Unauthorized


def key_digest(key: str) -> bytes:
    """Only the digest is kept in memory, so the key itself is never held or returned."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def engine(request: Request) -> AsyncEngine:
    eng: AsyncEngine = request.app.state.engine
    return eng


async def require_key(request: Request) -> None:
    """Accept `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""
    expected: bytes | None = request.app.state.key_digest
    if expected is None:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if not given or not hmac.compare_digest(key_digest(given), expected):
        raise Unauthorized("a valid API key is required (Authorization: Bearer KEY, or X-API-Key: KEY)")


def store(request: Request) -> Store:
    """The app's SQLite store (tracked folders, scanned files, settings)."""
    db: Store = request.app.state.store
    return db
