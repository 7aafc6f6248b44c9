"""`/api/settings/system` and `/api/settings/hf-api-key`: preferences, the API key, the HF token.

Secrets never leave the server: GET answers whether a key is set and a masked form. The API key
is kept only as its sha256 digest (in the store and in `app.state.key_digest`), so a copy of the
database does not reveal it. The router carries `require_key`, so once a key is required only its
holder can change it or turn auth off (ClaraCore left this route open). A change takes effect on
the next request: the new digest replaces the old one before the response is sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from claracore.errors import InvalidRequestError
from claracore.manage.store import Store
from claracore.protocol.manage import PREFERENCES, HFKeyUpdate, SystemSettingsUpdate
from claracore.server.deps import key_digest, require_key, store

router = APIRouter(prefix="/api/settings", dependencies=[Depends(require_key)])

SYSTEM = "system"  # store key: the non-secret preferences, as the spec names them
AUTH = "auth"  # store key: {"requireApiKey": bool, "keySha256": hex | None, "keyHint": str}
HF_TOKEN = "hf_api_key"  # store key: the HuggingFace token, kept usable for downloads
DEFAULTS: dict[str, Any] = {"preferredContext": 8192, "throughputFirst": False, "enableJinja": True}


def mask(secret: str, keep_prefix: int = 0) -> str:
    """A recognisable but useless form: the last 4 characters only when the secret is long."""
    if not secret:
        return ""
    if len(secret) < 16:
        return "••••"
    return f"{secret[:keep_prefix]}…{secret[-4:]}"


def restore_auth(app: Any) -> None:
    """At start-up: a key set through the settings route overrides the config file's `api_key`."""
    db: Store = app.state.store
    auth = db.get_setting(AUTH)
    if isinstance(auth, dict):
        digest = auth.get("keySha256")
        app.state.key_digest = bytes.fromhex(digest) if auth.get("requireApiKey") and digest else None


def _auth(request: Request) -> dict[str, Any]:
    """The stored auth record, or the config file's key (its digest only) when none is stored."""
    auth = store(request).get_setting(AUTH)
    if isinstance(auth, dict):
        return auth
    digest: bytes | None = request.app.state.key_digest
    return {"requireApiKey": digest is not None, "keySha256": digest.hex() if digest else None, "keyHint": ""}


async def _hardware(request: Request) -> dict[str, Any]:
    """The detection, probed once per app: the defaults of gpuType, backend, vramGB and ramGB."""
    cached: dict[str, Any] | None = getattr(request.app.state, "hardware_detection", None)
    if cached is None:
        from claracore.hardware.probe import system_detection

        cached = await run_in_threadpool(system_detection)
        request.app.state.hardware_detection = cached
    return cached


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")


@router.get("/system")
async def get_system(request: Request) -> dict[str, Any]:
    hw = await _hardware(request)
    stored = store(request).get_setting(SYSTEM, {}) or {}
    auth = _auth(request)
    body: dict[str, Any] = {
        "gpuType": hw["gpuType"],
        "backend": hw["recommendedBackend"],
        "vramGB": hw["totalVRAMGB"],
        "ramGB": hw["totalRAMGB"],
        **DEFAULTS,
        **{k: v for k, v in stored.items() if k in PREFERENCES},
    }
    key_set = bool(auth.get("keySha256"))
    body["requireApiKey"] = request.app.state.key_digest is not None
    body["apiKey"] = (auth.get("keyHint") or "••••") if key_set else ""
    body["apiKeySet"] = key_set
    return body


@router.post("/system")
async def set_system(request: Request, update: SystemSettingsUpdate) -> dict[str, Any]:
    """Merge the given fields; a key change or `requireApiKey` must leave a usable key behind."""
    db = store(request)
    given = update.model_dump(include=update.model_fields_set)
    auth = dict(_auth(request))
    was_required = request.app.state.key_digest is not None
    if "apiKey" in given and given["apiKey"] is not None:
        new_key: str = given["apiKey"]
        auth["keySha256"] = hashlib.sha256(new_key.encode("utf-8")).hexdigest() if new_key else None
        auth["keyHint"] = mask(new_key)
    require = given.get("requireApiKey")
    require = was_required if require is None else require
    if require and not auth.get("keySha256"):
        raise InvalidRequestError(
            "apiKey: requireApiKey needs an API key (at least 8 characters)",
            param="apiKey",
            details={"field": "apiKey"},
        )
    if require and not was_required and "apiKey" not in given:
        # Turning auth on with a key stored earlier: only if the caller shows that very key, so
        # nobody locks the server with a key they do not hold.
        shown = _presented_key(request)
        if not shown or not hmac.compare_digest(key_digest(shown).hex(), auth["keySha256"]):
            raise InvalidRequestError(
                "apiKey: turning requireApiKey on needs the apiKey in the body (or the stored key "
                "as the Authorization header)",
                param="apiKey",
                details={"field": "apiKey"},
            )
    auth["requireApiKey"] = require
    prefs = {k: v for k, v in given.items() if k in PREFERENCES and v is not None}
    if prefs:
        db.set_setting(SYSTEM, {**(db.get_setting(SYSTEM, {}) or {}), **prefs})
    if "apiKey" in given or "requireApiKey" in given:
        db.set_setting(AUTH, auth)
        digest = auth.get("keySha256")
        request.app.state.key_digest = bytes.fromhex(digest) if require and digest else None
    return {"message": "settings saved", **await get_system(request)}


@router.get("/hf-api-key")
async def get_hf_key(request: Request) -> dict[str, Any]:
    token = store(request).get_setting(HF_TOKEN) or ""
    return {"apiKeySet": bool(token), "apiKey": mask(token, keep_prefix=3)}


@router.post("/hf-api-key")
async def set_hf_key(request: Request, update: HFKeyUpdate) -> dict[str, Any]:
    """Stored as given (downloads must send it); "" removes it."""
    store(request).set_setting(HF_TOKEN, update.apiKey or None)
    return {"message": "HuggingFace API key saved" if update.apiKey else "HuggingFace API key removed",
            **await get_hf_key(request)}  # fmt: skip
