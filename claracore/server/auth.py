"""The API key: how a request presents it, how it is hashed and kept, and who may change it.

Requests show the key as `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant
time. Only its sha256 digest is kept, in memory and in the store, so neither a heap dump nor a
copy of the database reveals it. The config file's `api_key` is the key until one is set through
`POST /api/settings/system`; that one is stored and outlives restarts. Once a key is required,
only its holder can change it or turn auth off, because the settings route carries the check too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from claracore.errors import InvalidRequestError
from claracore.manage.settings import mask
from claracore.manage.store import Store
from claracore.protocol.manage import SystemSettingsUpdate

AUTH = "auth"  # store key: {"requireApiKey": bool, "keySha256": hex | None, "keyHint": str}


def key_digest(key: str) -> bytes:
    """The one hash of an API key, for every comparison and for storage (as hex)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a request shows: `Authorization: Bearer KEY`, else `X-API-Key: KEY`, else ""."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "")


def _matches(given: str, digest: bytes | None) -> bool:
    return bool(given) and digest is not None and hmac.compare_digest(key_digest(given), digest)


class Auth:
    """Which key requests must present now (`digest`; None: none), and the stored record behind it."""

    def __init__(self, store: Store, config_key: str = "") -> None:
        self._store = store
        self.digest: bytes | None = key_digest(config_key) if config_key else None
        record = store.get_setting(AUTH)
        if isinstance(record, dict):  # a key set through the settings route outlives restarts
            stored = record.get("keySha256")
            self.digest = bytes.fromhex(stored) if record.get("requireApiKey") and stored else None

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether a request with these headers may pass (always, when no key is required)."""
        return self.digest is None or _matches(presented_key(headers), self.digest)

    def config_key_changed(self, key: str) -> None:
        """A soft restart brought a new `api_key` in the config file: require it from now on."""
        self.digest = key_digest(key)

    def _record(self) -> dict[str, Any]:
        """The stored record, or the config file's key (its digest only) when none is stored."""
        record = self._store.get_setting(AUTH)
        if isinstance(record, dict):
            return record
        return {
            "requireApiKey": self.digest is not None,
            "keySha256": self.digest.hex() if self.digest else None,
            "keyHint": "",
        }

    def view(self) -> dict[str, Any]:
        """GET /api/settings/system's key fields: required now, whether one is set, its masked hint."""
        record = self._record()
        key_set = bool(record.get("keySha256"))
        return {
            "requireApiKey": self.digest is not None,
            "apiKey": (record.get("keyHint") or "••••") if key_set else "",
            "apiKeySet": key_set,
        }

    def change(self, update: SystemSettingsUpdate, headers: Mapping[str, str]) -> None:
        """Apply the `apiKey` and `requireApiKey` of `update`; it must leave a usable key behind.

        Raises InvalidRequestError (naming apiKey) and changes nothing when it would not: auth
        turned on without any key, or turned on with a key stored earlier by someone who does
        not show that very key (so nobody locks the server with a key they do not hold). The
        new digest applies from the next request.
        """
        given = update.model_dump(include=update.model_fields_set)
        record = dict(self._record())
        was_required = self.digest is not None
        if given.get("apiKey") is not None:
            new_key: str = given["apiKey"]
            record["keySha256"] = key_digest(new_key).hex() if new_key else None
            record["keyHint"] = mask(new_key)
        require = given.get("requireApiKey")
        require = was_required if require is None else require
        if require and not record.get("keySha256"):
            raise InvalidRequestError(
                "apiKey: requireApiKey needs an API key (at least 8 characters)",
                param="apiKey",
                details={"field": "apiKey"},
            )
        if require and not was_required and "apiKey" not in given:
            stored = bytes.fromhex(record["keySha256"])
            if not _matches(presented_key(headers), stored):
                raise InvalidRequestError(
                    "apiKey: turning requireApiKey on needs the apiKey in the body (or the stored key "
                    "as the Authorization header)",
                    param="apiKey",
                    details={"field": "apiKey"},
                )
        record["requireApiKey"] = require
        if "apiKey" in given or "requireApiKey" in given:
            self._store.set_setting(AUTH, record)
            stored_hex = record.get("keySha256")
            self.digest = bytes.fromhex(stored_hex) if require and stored_hex else None
