"""`/api/settings/system` and `/api/settings/hf-api-key`: preferences, the API key, the HF token.

Secrets never leave the server: GET answers whether a key is set and a masked form. The router
carries `require_key`, so once a key is required only its holder can change it or turn auth off
(ClaraCore left this route open); the rules are `server.auth`'s, the preferences `manage.settings`'.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from claracore.protocol.manage import HFKeyUpdate, SystemSettingsUpdate
from claracore.server.deps import SettingsDep, StateDep, require_key
from claracore.server.state import AppState

router = APIRouter(prefix="/api/settings", dependencies=[Depends(require_key)])


async def _system(state: AppState) -> dict[str, Any]:
    return {**state.settings.system(await state.detection()), **state.auth.view()}


@router.get("/system")
async def get_system(state: StateDep) -> dict[str, Any]:
    """The preferences (detected hardware, defaults, what was saved) and whether a key is set."""
    return await _system(state)


@router.post("/system")
async def set_system(update: SystemSettingsUpdate, request: Request, state: StateDep) -> dict[str, Any]:
    """Merge the given fields; a key change or `requireApiKey` must leave a usable key behind."""
    state.auth.change(update, request.headers)  # first: a refused key change saves nothing
    state.settings.save_preferences(update)
    return {"message": "settings saved", **await _system(state)}


@router.get("/hf-api-key")
async def get_hf_key(settings: SettingsDep) -> dict[str, Any]:
    return settings.hf_view()


@router.post("/hf-api-key")
async def set_hf_key(update: HFKeyUpdate, settings: SettingsDep) -> dict[str, Any]:
    """Stored as given (downloads must send it); "" removes it."""
    settings.set_hf_token(update.apiKey)
    message = "HuggingFace API key saved" if update.apiKey else "HuggingFace API key removed"
    return {"message": message, **settings.hf_view()}
