"""The key dialog on a 401, and the settings page: API key, Hugging Face token, system settings,
build facts. Each test runs its own `claracore serve`, since they change who may use it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from claracore import __version__
from tests.ui.conftest import Served, bundled_models, claracore_serve, smollm2_entry, write_config

KEY = "config-key-8c1e4f2a"


@pytest.fixture
def locked(tmp_path: Path, ui_built: Path) -> Iterator[Served]:
    """A server whose config file sets an API key."""
    config = write_config(tmp_path / "config.yaml", [smollm2_entry(bundled_models())], api_key=KEY)
    with claracore_serve(tmp_path, "--config", str(config)) as served:
        yield served


def test_the_key_dialog_appears_on_401_and_the_page_works_after(locked: Served, new_page: Any) -> None:
    page = new_page()
    assert page.goto(locked.url + "/ui/models").ok  # the page itself needs no key
    dialog = page.get_by_role("dialog", name="API key required")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill("not-the-key-000")
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog.get_by_text("The server refused that key")).to_be_visible()
    dialog.get_by_label("API key").fill(KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator('[data-model="smollm2"]')).to_be_visible()
    expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
    # Kept in the browser, and sent as a header, never in a URL.
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    with page.expect_request(lambda r: r.url.endswith("/v1/models")) as listed:
        page.reload()
    assert listed.value.headers["authorization"] == f"Bearer {KEY}"
    expect(page.locator('[data-model="smollm2"]')).to_be_visible()
    expect(dialog).to_be_hidden()
    assert not any(KEY in u for u in urls)


def test_cancelling_the_dialog_leaves_a_way_back(locked: Served, new_page: Any) -> None:
    page = new_page()
    page.goto(locked.url + "/ui/models")
    dialog = page.get_by_role("dialog", name="API key required")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    unlock = page.get_by_role("button", name="API key needed")
    expect(unlock).to_be_visible()
    unlock.click()
    dialog.get_by_label("API key").fill(KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(page.locator('[data-model="smollm2"]')).to_be_visible()


def test_system_settings_and_the_hf_token_round_trip(small_server: Served, page: Any) -> None:
    page.goto(small_server.url + "/ui/settings")
    system = page.get_by_role("region", name="System")
    system.get_by_label("Preferred context (tokens)").fill("16384")
    system.get_by_label("Backend").select_option("vulkan")
    system.get_by_role("switch", name="Throughput first").click()
    system.get_by_role("button", name="Save").click()
    expect(page.get_by_text("System settings saved")).to_be_visible()
    stored = small_server.get("/api/settings/system").json()
    assert (stored["preferredContext"], stored["backend"], stored["throughputFirst"]) == (
        16384,
        "vulkan",
        True,
    )
    # Out of range: the server's 400 lands on the field it names.
    system.get_by_label("Preferred context (tokens)").fill("100")
    system.get_by_role("button", name="Save").click()
    expect(system.get_by_role("alert")).to_contain_text("preferredContext")

    token = "hf_abcdefghijklmnopqrstuvwxyz012345"
    hf = page.get_by_role("region", name="Hugging Face token")
    hf.get_by_label("New token").fill(token)
    hf.get_by_role("button", name="Save token").click()
    expect(hf).to_contain_text("hf_…2345")
    page.reload()
    expect(
        page.get_by_role("region", name="System").get_by_label("Preferred context (tokens)")
    ).to_have_value("16384")
    expect(
        page.get_by_role("region", name="System").get_by_role("switch", name="Throughput first")
    ).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("region", name="Hugging Face token")).to_contain_text("hf_…2345")
    assert token not in page.content()  # masked: the page never holds it
    # Build facts from the doctor.
    build = page.get_by_test_id("build-info")
    expect(build).to_contain_text(__version__, timeout=60_000)
    expect(build).to_contain_text("llama-cpp-python")


def test_requiring_a_generated_key_keeps_this_browser_working(small_server: Served, new_page: Any) -> None:
    page = new_page()
    page.goto(small_server.url + "/ui/settings")
    security = page.get_by_role("region", name="API key")
    security.get_by_role("button", name="Generate").click()
    key = security.get_by_role("textbox", name="Key").input_value()
    assert len(key) >= 30
    security.get_by_role("button", name="Save and require it").click()
    expect(security.get_by_role("switch", name="Require an API key")).to_have_attribute(
        "aria-checked", "true"
    )
    expect(security).to_contain_text(re.compile(r"set · …\S{4}"))
    assert httpx.get(small_server.url + "/v1/models").status_code == 401
    assert (
        httpx.get(small_server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    # This browser holds the new key: other pages work without a dialog.
    page.get_by_role("link", name="Models").click()
    expect(page.locator('[data-model="smollm2"]')).to_be_visible()
    expect(page.get_by_role("dialog", name="API key required")).to_be_hidden()
    # Another browser is asked for it.
    other = new_page()
    other.goto(small_server.url + "/ui/models")
    expect(other.get_by_role("dialog", name="API key required")).to_be_visible()
    # And turning it off again needs no dialog here.
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("region", name="API key").get_by_role("switch", name="Require an API key").click()
    expect(page.get_by_text("API key no longer required")).to_be_visible()
    assert httpx.get(small_server.url + "/v1/models").status_code == 200
