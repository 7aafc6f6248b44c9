"""The models page: every bundled model with its facts, live state, load/unload, search, filters."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.ui.conftest import Served, wait_until


def card(page: Any, model: str) -> Any:
    return page.locator(f'[data-model="{model}"]')


def test_first_visit_shows_every_model_with_its_facts(bundled: Served, page: Any) -> None:
    response = page.goto(bundled.url + "/")
    assert response.ok and page.url.endswith("/ui/models")
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    listed = bundled.models()
    expect(page.locator("[data-model]")).to_have_count(len(listed))
    smol = card(page, "smollm2")
    expect(smol).to_contain_text("Chat")
    expect(smol).to_contain_text("default")  # its alias
    expect(smol).to_contain_text("Q4_1")
    expect(smol).to_contain_text("93.8 MiB")  # 98,362,432 bytes on disk
    expect(smol).to_contain_text("SmolLM2-135M-Instruct.Q4_1.gguf")
    expect(smol).to_contain_text("RAM budget")
    expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()


def test_load_and_unload_change_the_card_live(bundled: Served, page: Any) -> None:
    page.goto(bundled.url + "/ui/models")
    smol = card(page, "smollm2")
    if bundled.models()["smollm2"]["state"] == "loaded":
        bundled.post("/api/models/smollm2/unload", json={})
    expect(smol).to_have_attribute("data-state", "unloaded")
    smol.get_by_role("button", name="Load").click()
    expect(smol).to_have_attribute("data-state", "loaded", timeout=60_000)
    expect(smol.get_by_role("button", name="Unload")).to_be_visible()
    # The pool summary counts it against the budget.
    expect(page.get_by_role("meter", name="RAM reserved by loaded models")).not_to_have_attribute(
        "aria-valuenow", "0"
    )
    smol.get_by_role("button", name="Unload").click()
    expect(smol).to_have_attribute("data-state", "unloaded")
    assert bundled.models()["smollm2"]["state"] == "unloaded"


def test_a_change_made_elsewhere_shows_without_a_reload(bundled: Served, page: Any) -> None:
    page.goto(bundled.url + "/ui/models")
    smol = card(page, "smollm2")
    expect(smol).to_have_attribute("data-state", "unloaded")
    # Another client (a script, the CLI) loads the model; the open page follows.
    assert bundled.post("/api/models/smollm2/load", json={}).status_code == 200
    expect(smol).to_have_attribute("data-state", "loaded", timeout=10_000)
    # A request in flight shows on the card while it runs.
    with httpx.stream(
        "POST",
        bundled.url + "/v1/chat/completions",
        json={
            "model": "smollm2",
            "stream": True,
            "max_tokens": 2000,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        },
        timeout=60,
    ) as stream:
        lines = stream.iter_lines()  # kept: a dropped iterator closes the stream (and cancels it)
        assert next(lines).startswith("data: ")
        expect(smol).to_contain_text("1 in flight", timeout=10_000)
    wait_until(lambda: bundled.models()["smollm2"]["in_flight"] == 0, 30, "the stream to end on the server")
    expect(smol).not_to_contain_text("in flight", timeout=10_000)
    bundled.post("/api/models/unload", json={})
    expect(smol).to_have_attribute("data-state", "unloaded", timeout=10_000)


def test_search_filters_and_the_chat_button(bundled: Served, page: Any) -> None:
    page.goto(bundled.url + "/ui/models")
    expect(page.locator("[data-model]")).not_to_have_count(0)
    page.get_by_role("searchbox", name="Search models").fill("Q4_1")
    expect(page.locator("[data-model]")).to_have_count(1)
    expect(card(page, "smollm2")).to_be_visible()
    page.get_by_role("searchbox", name="Search models").fill("no such model")
    expect(page.get_by_text("No model matches")).to_be_visible()
    page.get_by_role("searchbox", name="Search models").fill("")
    page.get_by_role("radiogroup", name="Type").get_by_role("radio", name="Chat").click()
    expect(page.locator("[data-model]")).to_have_count(1)
    page.get_by_role("radiogroup", name="Type").get_by_role("radio", name="All types").click()
    page.get_by_role("radiogroup", name="State").get_by_role("radio", name="Unloaded").click()
    expect(page.locator('[data-model][data-state="loaded"]')).to_have_count(0)
    card(page, "smollm2").get_by_role("link", name="Chat").click()
    page.wait_for_url("**/ui/chat?model=smollm2")
    expect(page.get_by_role("heading", name="Chat with smollm2")).to_be_visible()
