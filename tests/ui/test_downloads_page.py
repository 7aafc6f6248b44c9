"""The downloads page against the loopback hub stand-in: search, a repository's files with the
fits verdict for this machine, a download paused, resumed and finished from the page with live
progress, then "add and load" and the link to try the model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.hub_stub import HubStub
from tests.ui.conftest import claracore_serve, shot

REPO = "org/tiny-GGUF"


@pytest.fixture
def hub(tiny_llama: Path) -> Iterator[HubStub]:
    data = tiny_llama.read_bytes()
    with HubStub() as stub:
        stub.add(REPO, {"tiny-Q4_K_M.gguf": data, "tiny-Q8_0.gguf": data, "mmproj-tiny-f16.gguf": data})
        stub.add("org/other-GGUF", {"other-Q4_0.gguf": data})
        yield stub


def test_a_download_is_paused_resumed_and_finished_from_the_page(
    tmp_path: Path, ui_built: Path, hub: HubStub, page: Any
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    size = len(next(iter(hub.repos[REPO].files.values())).data)
    hub.hold_after = size // 3  # every transfer stalls a third of the way in, until released
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}
    with claracore_serve(tmp_path / "home", "--config", str(config), env=env) as served:
        page.goto(served.url + "/ui/downloads")
        page.get_by_role("searchbox", name="Search the hub").fill("tiny")
        page.get_by_role("search").get_by_role("button", name="Search").click()
        results = page.get_by_role("list", name="Search results")
        expect(results.get_by_role("button")).to_have_count(1)  # "other" does not match
        results.get_by_role("button", name=REPO).click()
        page.wait_for_url(re.compile(r"repo=org%2Ftiny-GGUF|repo=org/tiny-GGUF"))

        files = page.get_by_role("region", name=f"Files of {REPO}")
        row = files.locator('[data-file="tiny-Q4_K_M.gguf"]')
        expect(row).to_have_attribute("data-verdict", "ram")  # no GPU here: it runs from RAM
        expect(row).to_contain_text("In RAM")
        expect(row).to_contain_text("context 512")
        expect(row.get_by_label("Recommended")).to_be_visible()
        expect(row.get_by_label("Vision projector for tiny-q4_k_m")).to_have_value("mmproj-tiny-f16.gguf")
        expect(files.locator('[data-file="tiny-Q8_0.gguf"]')).to_contain_text("estimated")
        files.get_by_label("Name in the config (optional)").fill("tiny")
        row.get_by_role("button", name="Download tiny-q4_k_m").click()

        item = page.get_by_role("listitem", name="Download tiny")
        expect(item).to_have_attribute("data-state", "downloading")
        expect(item).to_contain_text("2 files")  # the projector travels with the model
        expect(item.get_by_label("Transfer")).to_contain_text(re.compile(r"[1-9]\d* KiB of 988 KiB \(\d+%\)"))
        item.get_by_role("button", name="Pause").click()
        expect(item).to_have_attribute("data-state", "paused")
        shot(page, "downloads-paused")
        download_id = item.get_attribute("data-download")
        assert httpx.get(f"{served.url}/api/models/downloads/{download_id}").json()["state"] == "paused"

        item.get_by_role("button", name="Resume").click()
        expect(item).to_have_attribute("data-state", "downloading")
        hub.release()
        expect(item).to_have_attribute("data-state", "completed", timeout=30_000)
        expect(item).to_contain_text("in config.yaml as tiny")
        asked = set(hub.ranges_asked("tiny-Q4_K_M.gguf"))
        assert f"bytes={size // 3}-" in asked  # resumed from the bytes on disk, not started again

        item.get_by_role("button", name="Add and load").click()
        expect(item.get_by_role("link", name="Chat")).to_be_visible(timeout=30_000)
        assert served.models()["tiny"]["state"] == "loaded"
        item.get_by_role("link", name="Chat").click()
        page.wait_for_url("**/ui/chat?model=tiny")
        # Opened with the model (and its page loaded before the server stops at the end).
        expect(page.get_by_role("heading", name="Chat with tiny")).to_be_visible()


def test_the_token_is_saved_masked_and_a_failed_link_says_why(
    tmp_path: Path, ui_built: Path, hub: HubStub, page: Any
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")
    with claracore_serve(tmp_path / "home", "--config", str(config), env={"HF_ENDPOINT": hub.url}) as served:
        page.goto(served.url + "/ui/downloads")
        token = page.get_by_role("group", name="Hugging Face token")
        token.locator("summary").click()
        token.get_by_label("Token").fill("hf_abcdefghijklmnopqrstuvwxyz")
        token.get_by_role("button", name="Save token").click()
        expect(token).to_contain_text("set · hf_…wxyz")
        assert "abcdefghijklmnop" not in page.content()
        assert httpx.get(served.url + "/api/settings/hf-api-key").json()["apiKeySet"] is True

        link = page.get_by_role("group", name="Download from a link")
        link.locator("summary").click()
        link.get_by_label("URL of a GGUF file").fill(hub.url + "/files/missing.gguf")
        link.get_by_role("button", name="Download").click()
        item = page.locator("[data-download]").first
        expect(item).to_have_attribute("data-state", "failed", timeout=30_000)
        expect(item.get_by_role("alert")).to_contain_text("404")
        expect(item.get_by_role("button", name="Retry")).to_be_visible()
