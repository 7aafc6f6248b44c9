"""Settings kept in the store rather than in config.yaml: the planner preferences and the HF token.

`POST /api/settings/system` saves preferences (backend, memory, context…) that fill the gaps of
a setup request, and `POST /api/settings/hf-api-key` the token downloads send. Secrets never
leave the server: they are shown masked. The API key, which the same route changes, is the
HTTP layer's (`claracore.server.auth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claracore.manage.store import Store
from claracore.protocol.manage import PREFERENCES, SystemSettingsUpdate

SYSTEM = "system"  # store key: the non-secret preferences, as the spec names them
HF_TOKEN = "hf_api_key"  # store key: the HuggingFace token, kept usable for downloads
DEFAULTS: dict[str, Any] = {
    "preferredContext": 8192,
    "throughputFirst": False,
    "enableJinja": True,
    "maxConcurrentDownloads": 2,
}

#: The preferences, as the planner's options: what a setup request leaves out.
_PLANNER_OPTIONS = {
    "backend": "forceBackend",
    "vramGB": "forceVRAM",
    "ramGB": "forceRAM",
    "preferredContext": "preferredContext",
    "throughputFirst": "throughputFirst",
    "enableJinja": "enableJinja",
}


def mask(secret: str, keep_prefix: int = 0) -> str:
    """A recognisable but useless form: the last 4 characters only when the secret is long."""
    if not secret:
        return ""
    if len(secret) < 16:
        return "••••"
    return f"{secret[:keep_prefix]}…{secret[-4:]}"


class Settings:
    """The stored preferences and HF token of one data directory."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def preferences(self) -> dict[str, Any]:
        """The preferences saved so far (only the spec's keys)."""
        saved = self._store.get_setting(SYSTEM, {}) or {}
        return {k: v for k, v in saved.items() if k in PREFERENCES}

    def system(self, detection: Mapping[str, Any]) -> dict[str, Any]:
        """GET /api/settings/system's preferences: detected hardware, then defaults, then what was saved."""
        return {
            "gpuType": detection["gpuType"],
            "backend": detection["recommendedBackend"],
            "vramGB": detection["totalVRAMGB"],
            "ramGB": detection["totalRAMGB"],
            **DEFAULTS,
            **self.preferences(),
        }

    def save_preferences(self, update: SystemSettingsUpdate) -> None:
        """Merge the preferences `update` sets into the saved ones (absent fields stay)."""
        given = update.model_dump(include=update.model_fields_set)
        prefs = {k: v for k, v in given.items() if k in PREFERENCES and v is not None}
        if prefs:
            self._store.set_setting(SYSTEM, {**(self._store.get_setting(SYSTEM, {}) or {}), **prefs})

    def planner_defaults(self) -> dict[str, Any]:
        """The saved preferences as the planner's camelCase options, to fill what a request leaves out."""
        saved = self._store.get_setting(SYSTEM, {}) or {}
        prefs = {option: saved[key] for key, option in _PLANNER_OPTIONS.items() if saved.get(key) is not None}
        if prefs.get("forceBackend") == "auto":
            del prefs["forceBackend"]  # "auto" means detect, which is what no option does
        return prefs

    def max_downloads(self) -> int:
        """How many downloads may run at once (the others wait queued)."""
        return int(self.preferences().get("maxConcurrentDownloads") or DEFAULTS["maxConcurrentDownloads"])

    def hf_token(self) -> str:
        """The HuggingFace token as stored ("" when none), for downloads to send."""
        return str(self._store.get_setting(HF_TOKEN) or "")

    def hf_view(self) -> dict[str, Any]:
        """GET /api/settings/hf-api-key: whether a token is set, and its masked form."""
        token = self.hf_token()
        return {"apiKeySet": bool(token), "apiKey": mask(token, keep_prefix=3)}

    def set_hf_token(self, token: str) -> None:
        """Store the token as given (downloads must send it); "" removes it."""
        self._store.set_setting(HF_TOKEN, token or None)
