"""The API key: how a request presents it, how it is hashed and kept, and who may change it.

Requests show the key as `Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant
time. Only its sha256 digest is kept, in memory and in the store, so neither a heap dump nor a
copy of the database reveals it.

The rule, decided here and nowhere else: the config file's `api_key`, when present, is the key,
whatever the store says; the settings route cannot change or disable it. Only when the config
has none does a key set through `POST /api/settings/system` apply (stored, so it outlives
restarts), and once one is required only its holder can change it or turn it off, because the
HTTP guard checks every request to that route too.
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
        self._config_digest: bytes | None = None
        self._stored_digest = self._required_stored(self._record())
        self.use_config_key(config_key)

    @property
    def from_config(self) -> bool:
        """Whether the config file sets the key (then the settings route cannot change it)."""
        return self._config_digest is not None

    @property
    def digest(self) -> bytes | None:
        """The digest requests must match: the config file's key, else a required stored one."""
        return self._config_digest if self._config_digest is not None else self._stored_digest

    @staticmethod
    def _required_stored(record: Mapping[str, Any]) -> bytes | None:
        stored = record.get("keySha256")
        return bytes.fromhex(str(stored)) if record.get("requireApiKey") and stored else None

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether a request with these headers may pass (always, when no key is required)."""
        digest = self.digest
        return digest is None or _matches(presented_key(headers), digest)

    def use_config_key(self, key: str) -> None:
        """The config file's `api_key` ("" when it has none), at start and at each soft restart."""
        self._config_digest = key_digest(key) if key else None

    def _record(self) -> dict[str, Any]:
        """The stored record ({} when none): the key set through the settings route."""
        record = self._store.get_setting(AUTH)
        return dict(record) if isinstance(record, dict) else {}

    def view(self) -> dict[str, Any]:
        """GET /api/settings/system's key fields: required now, whether one is set, its masked hint,
        and where it comes from ("config", "settings" or null)."""
        if self.from_config:
            return {"requireApiKey": True, "apiKey": "••••", "apiKeySet": True, "apiKeySource": "config"}
        record = self._record()
        key_set = bool(record.get("keySha256"))
        return {
            "requireApiKey": self.digest is not None,
            "apiKey": (record.get("keyHint") or "••••") if key_set else "",
            "apiKeySet": key_set,
            "apiKeySource": "settings" if key_set else None,
        }

    def change(self, update: SystemSettingsUpdate, headers: Mapping[str, str]) -> None:
        """Apply the `apiKey` and `requireApiKey` of `update`; it must leave a usable key behind.

        Raises InvalidRequestError (naming the field) and changes nothing when the config file
        sets the key (only `requireApiKey: true`, which changes nothing, is accepted then), when
        auth would be turned on without any key, or turned on with a key stored earlier by
        someone who does not show that very key (so nobody locks the server with a key they do
        not hold). The caller has already passed the key check, so when a key is required the
        request holds it. The new digest applies from the next request.
        """
        given = update.model_dump(include=update.model_fields_set)
        if self.from_config:
            for field in ("apiKey", "requireApiKey"):
                if field in given and not (field == "requireApiKey" and given[field] is True):
                    raise InvalidRequestError(
                        f"{field}: the API key is set by the config file's api_key, which always wins; "
                        "change or remove it there",
                        param=field,
                    )
            return
        record = self._record()
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
            )
        if require and not was_required and "apiKey" not in given:
            stored = bytes.fromhex(record["keySha256"])
            if not _matches(presented_key(headers), stored):
                raise InvalidRequestError(
                    "apiKey: turning requireApiKey on needs the apiKey in the body (or the stored key "
                    "as the Authorization header)",
                    param="apiKey",
                )
        record["requireApiKey"] = require
        if "apiKey" in given or "requireApiKey" in given:
            self._store.set_setting(AUTH, record)
            self._stored_digest = self._required_stored(record)
