"""The one auth rule, over real HTTP and real restarts on one data directory: the config file's
`api_key`, when present, always wins; a key set through the settings route applies only where the
config has none, and no settings write can weaken the config's key."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.e2e.server import running_server
from tests.e2e.test_system_settings_api import serve

KEY = "config-key-0123456789"
NEW = "config-key-9876543210"
STORED = "stored-key-abcdefghij"
ROUTES = ("/v1/models", "/api/settings/system", "/api/config", "/api/system/specs")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def needs(url: str, key: str, *refused: str) -> None:
    """Every route in ROUTES refuses no key and each of `refused`, and answers `key`."""
    for path in ROUTES:
        assert httpx.get(url + path, timeout=30).status_code == 401, path
        for other in refused:
            assert httpx.get(url + path, headers=bearer(other), timeout=30).status_code == 401, (path, other)
        assert httpx.get(url + path, headers=bearer(key), timeout=30).status_code == 200, path


def test_a_stored_record_cannot_override_the_config_key(tmp_path: Path) -> None:
    """Found: anyone could store requireApiKey false while no key was configured; after a restart
    with api_key in the config, every route answered without a key."""
    with serve(tmp_path) as (url, _):
        assert httpx.post(url + "/api/settings/system", json={"requireApiKey": False}).status_code == 200
    with serve(tmp_path, {"api_key": KEY, "models": []}) as (url, _):
        needs(url, KEY)
    # A key stored (and required) while the config had none gives way to the config's key too.
    with serve(tmp_path) as (url, _):
        r = httpx.post(url + "/api/settings/system", json={"requireApiKey": True, "apiKey": STORED})
        assert r.status_code == 200
        needs(url, STORED)
    with serve(tmp_path, {"api_key": KEY, "models": []}) as (url, _):
        needs(url, KEY, STORED)
        view = httpx.get(url + "/api/settings/system", headers=bearer(KEY)).json()
        assert view["apiKeySource"] == "config" and view["requireApiKey"] is True
    # Without the config's key, the stored one applies again.
    with serve(tmp_path) as (url, _):
        needs(url, STORED)


def test_changing_the_config_key_replaces_the_old_one_after_settings_writes(tmp_path: Path) -> None:
    """Found: after the key holder saved settings, a new api_key in the config was refused at the
    next start and the old one still worked."""
    with serve(tmp_path, {"api_key": KEY, "models": []}) as (url, _):
        r = httpx.post(
            url + "/api/settings/system",
            json={"preferredContext": 4096, "requireApiKey": True},
            headers=bearer(KEY),
        )
        assert r.status_code == 200
    with serve(tmp_path, {"api_key": NEW, "models": []}) as (url, _):
        needs(url, NEW, KEY)
        assert httpx.get(url + "/api/settings/system", headers=bearer(NEW)).json()["preferredContext"] == 4096


def test_the_settings_route_cannot_change_or_disable_the_config_key(tmp_path: Path) -> None:
    with serve(tmp_path, {"api_key": KEY, "models": []}) as (url, app):
        for body, field in (
            ({"requireApiKey": False}, "requireApiKey"),
            ({"apiKey": STORED}, "apiKey"),
            ({"apiKey": ""}, "apiKey"),
            ({"apiKey": STORED, "requireApiKey": True}, "apiKey"),
        ):
            r = httpx.post(url + "/api/settings/system", json=body, headers=bearer(KEY))
            assert r.status_code == 400 and field in r.json()["error"], (body, r.text)
            assert r.json()["details"]["field"] == field  # where the web UI marks the field
        assert app.state.store.get_setting("auth") is None  # nothing stored
        assert app.state.store.get_setting("system") in (None, {})  # a refused write saves nothing
        needs(url, KEY, STORED)
        # Preferences still save, and requireApiKey: true (what is true anyway) is accepted.
        r = httpx.post(
            url + "/api/settings/system", json={"vramGB": 4, "requireApiKey": True}, headers=bearer(KEY)
        )
        assert r.status_code == 200 and r.json()["vramGB"] == 4


def test_a_soft_restart_applies_the_config_key_as_the_file_has_it(tmp_path: Path, tiny_llama: Path) -> None:
    cfg = tmp_path / "config.yaml"
    models = [{"name": "a", "model": str(tiny_llama)}]
    cfg.write_text(yaml.safe_dump({"api_key": KEY, "models": models}))
    with running_server({"api_key": KEY, "models": models}, config_path=cfg, data_dir=tmp_path) as (url, _):
        cfg.write_text(yaml.safe_dump({"api_key": NEW, "models": models}))
        assert httpx.post(url + "/api/server/restart", headers=bearer(KEY)).status_code == 200
        needs(url, NEW, KEY)
        # The key removed from the file: no key is required any more (none was stored).
        cfg.write_text(yaml.safe_dump({"models": models}))
        assert httpx.post(url + "/api/server/restart", headers=bearer(NEW)).status_code == 200
        assert httpx.get(url + "/v1/models").status_code == 200
