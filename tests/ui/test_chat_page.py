"""The chat playground against SmolLM2: a streamed answer with timings, stop (button and Esc),
regenerate and edit, and conversations kept in the browser (rename, export, delete)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.ui.conftest import Served, wait_until

QUESTION = "What is the capital city of France? Answer in one sentence."
TITLE = re.compile(r"^What is the capital city of France\? Answer in o…")  # titles stop at 48 characters


def open_chat(page: Any, served: Served, *, max_tokens: int = 40) -> None:
    """The chat with SmolLM2 at temperature 0 (repeatable answers), set with the keyboard."""
    page.goto(served.url + "/ui/chat?model=smollm2")
    expect(page.get_by_role("heading", name="Chat with smollm2")).to_be_visible()
    page.get_by_role("button", name="Settings").click()
    panel = page.get_by_role("dialog", name="Chat settings")
    expect(panel.get_by_label("Model")).to_have_value("smollm2")
    panel.get_by_label("Temperature").focus()
    page.keyboard.press("Home")  # the slider's minimum: 0
    panel.get_by_label("Max tokens").fill(str(max_tokens))
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def send(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def replies(page: Any) -> Any:
    return page.locator('[data-role="assistant"]')


def test_chat_streams_an_answer_with_timings_and_keeps_it(bundled: Served, page: Any) -> None:
    open_chat(page, bundled)
    send(page, QUESTION)
    expect(page.locator('[data-role="user"]')).to_have_text(QUESTION)
    answer = replies(page).last
    expect(answer.get_by_test_id("assistant-text")).to_contain_text("Paris", timeout=60_000)
    stats = answer.get_by_test_id("message-stats")
    expect(stats).to_contain_text("first token", timeout=60_000)  # once the stream ends (40 tokens)
    expect(stats).to_contain_text("tok/s")
    expect(stats).to_contain_text("prompt")  # usage came with the stream
    expect(page.get_by_role("heading", name=TITLE)).to_be_visible()  # the chat took its title
    # Kept in the browser: a reload shows the same conversation and answer.
    page.reload()
    history = page.get_by_role("list", name="Conversations")
    expect(history.get_by_role("button", name=TITLE)).to_be_visible()
    history.get_by_role("button", name=TITLE).click()
    expect(replies(page).last).to_contain_text("Paris")


def test_stop_and_escape_end_a_reply_on_the_server_too(bundled: Served, page: Any) -> None:
    open_chat(page, bundled, max_tokens=1500)
    for how in ("button", "escape"):
        send(page, "Write a very long story about a lighthouse keeper and the sea.")
        answer = replies(page).last
        expect(answer.get_by_test_id("assistant-text")).to_contain_text(" ", timeout=60_000)  # words arrive
        expect(answer).to_have_attribute("data-streaming", "true")
        wait_until(lambda: bundled.models()["smollm2"]["in_flight"] == 1, 10, "the reply to be generating")
        if how == "button":
            page.get_by_role("button", name="Stop").click()
        else:
            page.keyboard.press("Escape")
        expect(answer.get_by_test_id("message-stats")).to_contain_text("stopped", timeout=10_000)
        # The server stopped generating too (the slot is free), long before 1500 tokens.
        wait_until(lambda: bundled.models()["smollm2"]["in_flight"] == 0, 10, f"the server to stop ({how})")
        assert 0 < len(answer.get_by_test_id("assistant-text").inner_text()) < 4000
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_regenerate_and_edit(bundled: Served, page: Any) -> None:
    open_chat(page, bundled)
    send(page, "Say hello in one short sentence.")
    expect(replies(page).last.get_by_test_id("message-stats")).to_be_visible(timeout=60_000)
    first = replies(page).last.get_by_test_id("assistant-text").inner_text()
    page.get_by_role("button", name="Regenerate").click()
    expect(replies(page).last.get_by_test_id("message-stats")).to_be_visible(timeout=60_000)
    expect(replies(page)).to_have_count(1)  # replaced, not appended
    assert replies(page).last.get_by_test_id("assistant-text").inner_text() == first  # temperature 0
    # Editing the question asks again from there.
    page.locator('[data-role="user"]').hover()
    page.get_by_role("button", name="Edit message").click()
    page.get_by_role("textbox", name="Edit message").fill(QUESTION)
    page.get_by_role("button", name="Save and send").click()
    expect(page.locator('[data-role="user"]')).to_have_text(QUESTION)
    expect(replies(page)).to_have_count(1)
    expect(replies(page).last.get_by_test_id("assistant-text")).to_contain_text("Paris", timeout=60_000)


def test_conversations_rename_export_and_delete(bundled: Served, page: Any) -> None:
    open_chat(page, bundled, max_tokens=8)
    send(page, "Hi")
    expect(replies(page).last.get_by_test_id("message-stats")).to_be_visible(timeout=60_000)
    history = page.get_by_role("list", name="Conversations")
    history.get_by_role("button", name="Rename Hi").click()
    history.get_by_role("textbox", name="Conversation title").fill("Greetings")
    history.get_by_role("button", name="Save").click()
    expect(history.get_by_role("button", name=re.compile("^Greetings"))).to_be_visible()
    with page.expect_download() as download:
        history.get_by_role("button", name="Export Greetings").click()
    assert download.value.suggested_filename == "greetings.json"
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["title"] == "Greetings"
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][0]["content"] == "Hi"
    assert exported["messages"][1]["stats"]["tokens"] > 0
    assert exported["settings"]["temperature"] == 0
    history.get_by_role("button", name="Delete Greetings").click()
    history.get_by_role("button", name="Delete", exact=True).click()
    expect(history.get_by_role("button", name=re.compile("^Greetings"))).to_have_count(0)
    page.reload()
    expect(page.get_by_role("list", name="Conversations").get_by_role("listitem")).to_have_count(0)
