"""The setup wizard end to end: a fresh server with no model opens it by itself; a folder of tiny
generated models is scanned and listed with its flags; hardware and options are chosen; the
config is generated with live progress, says per model what it chose and why, and serves; a
second run keeps what was edited by hand, and says so."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml
from playwright.sync_api import expect

from claracore.config import load_config
from tests.ui.conftest import claracore_serve, shot


def next_step(page: Any, name: str = "Next") -> None:
    page.get_by_role("button", name=name, exact=True).click()


def test_the_wizard_takes_a_folder_to_a_config_that_serves(
    tmp_path: Path, ui_built: Path, tiny_llama: Path, tiny_bert: Path, page: Any
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_llama, models / "chat.gguf")
    shutil.copy(tiny_llama, models / "mmproj-chat-f16.gguf")  # paired with chat: a vision model
    (models / "more").mkdir()
    shutil.copy(tiny_bert, models / "more" / "embed.gguf")
    config = tmp_path / "config.yaml"
    config.write_text("# mine\nmodels: []\n")
    with claracore_serve(tmp_path / "home", "--config", str(config)) as served:
        page.goto(served.url + "/")
        page.wait_for_url("**/ui/setup")  # no model configured: the wizard opens by itself
        expect(page.get_by_role("heading", name="Set up ClaraCore for this machine")).to_be_visible()
        next_step(page, "Start")
        page.get_by_role("link", name=re.compile("^Models on this machine")).click()
        page.wait_for_url("**/ui/setup/folders")
        expect(page.get_by_role("button", name="Next")).to_be_disabled()

        page.get_by_label("Folder on the server").fill(str(models))
        page.get_by_role("button", name="Add and scan").click()
        found = page.get_by_role("region", name="Models found")
        expect(found).to_contain_text("2 models found")
        chat = found.locator('[data-found="chat"]')
        expect(chat).to_contain_text("Chat")
        expect(chat).to_contain_text("F32")
        expect(chat).to_contain_text("vision")
        expect(chat).to_contain_text("draft-sized")
        expect(found.locator('[data-found="embed"]')).to_contain_text("embedding")
        expect(page.locator(f'[data-folder="{models}"]')).to_contain_text("2 models")

        shot(page, "setup-folders")
        next_step(page)
        page.wait_for_url("**/ui/setup/hardware")
        page.get_by_label("Backend").select_option("cpu")
        page.get_by_label("RAM to use (GB)").fill("8")
        next_step(page)
        page.wait_for_url("**/ui/setup/options")
        page.get_by_label("Preferred context (tokens)").fill("512")
        page.get_by_label("Smallest context (tokens)").fill("1024")
        expect(page.get_by_text("must not be above the preferred context")).to_be_visible()
        expect(page.get_by_role("button", name="Next")).to_be_disabled()
        page.get_by_label("Smallest context (tokens)").fill("128")
        page.get_by_role("switch", name="Throughput first").click()
        next_step(page)
        page.wait_for_url("**/ui/setup/generate")

        page.get_by_role("button", name="Generate configuration").click()
        planned = page.get_by_role("region", name="Planned models")
        expect(planned).to_be_visible(timeout=60_000)
        row = planned.locator('[data-planned="chat"]')
        expect(row).to_contain_text(re.compile(r"GPU layers\s*CPU"))
        expect(row).to_contain_text(re.compile(r"Context\s*512"))
        expect(row).to_contain_text(re.compile(r"Parallel\s*8"))  # throughput first
        why = "Why: on the CPU: no GPU backend; context 512: the preferred context; 8 sequences"
        expect(row).to_contain_text(why)
        expect(planned.locator('[data-planned="embed"]')).to_contain_text("an encoder reads short passages")
        expect(page.get_by_role("meter", name="Setup progress")).to_have_attribute("aria-valuenow", "100")
        expect(planned.get_by_label("Applied")).to_contain_text("added")
        next_step(page, "Finish")
        page.get_by_role("link", name="Open chat").click()
        page.wait_for_url("**/ui/chat")

        # The file validates, holds what was chosen, and serves.
        written = load_config(config)
        chat_spec = written.find_model("chat")
        assert chat_spec is not None and chat_spec.context_length == 512 and chat_spec.backend == "cpu"
        assert chat_spec.mmproj is not None and written.memory.ram_gb == 8.0
        reply = httpx.post(
            served.url + "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text

        # Run again after a hand edit: it is kept, and the result says so.
        edit = {"parallel": 3, "temperature": 0.3}
        assert httpx.post(served.url + "/api/config/model/chat", json=edit, timeout=30).status_code == 200
        page.goto(served.url + "/ui/setup/generate")
        page.get_by_role("button", name="Generate again").click()
        kept = planned.locator('[data-planned="chat"]')
        expect(kept).to_contain_text("Kept your hand-edited parallel", timeout=60_000)
        chat_entry = next(m for m in yaml.safe_load(config.read_text())["models"] if m["name"] == "chat")
        assert chat_entry["parallel"] == 3 and chat_entry["temperature"] == 0.3
