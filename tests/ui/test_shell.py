"""What every page shares: keyboard use, themes, a 375 px wide screen, the restart banner and
menu (soft and hard), and the connection indicator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import Served, bundled_models, claracore_serve, shot, smollm2_entry, write_config

PHONE = {"width": 375, "height": 740}


def tab_to(page: Any, name: str, limit: int = 60) -> None:
    """Presses Tab until the focused element is called `name`; fails if it never is."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e ? (e.getAttribute('aria-label') || e.textContent || '').trim() : '' }"
        )
        if focused == name:
            return
    pytest.fail(f"{name!r} cannot be reached with Tab")


def no_sideways_scroll(page: Any) -> bool:
    """Neither the page nor the main area scrolls sideways (tables may scroll inside themselves)."""
    return bool(
        page.evaluate(
            "() => [document.documentElement, document.querySelector('main')]"
            ".every(e => e.scrollWidth <= e.clientWidth)"
        )
    )


def test_the_keyboard_alone_reaches_every_page_and_the_theme(bundled: Served, new_page: Any) -> None:
    page = new_page(color_scheme="light")
    page.goto(bundled.url + "/ui/models")
    expect(page.locator("[data-model]").first).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for name, path in [("Chat", "/ui/chat"), ("Settings", "/ui/settings"), ("Models", "/ui/models")]:
        page.locator("body").focus()
        tab_to(page, name)
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{path}")
        expect(page.get_by_role("link", name=name, exact=True).first).to_have_attribute(
            "aria-current", "page"
        )
    # The theme menu: open, move down to Dark, choose it; kept after a reload.
    assert "dark" not in (page.locator("html").get_attribute("class") or "")
    page.locator("body").focus()
    tab_to(page, "Theme")
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitemradio", name="Light")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitemradio", name="Dark")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    page.reload()
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    expect(page.locator("[data-model]").first).to_be_visible()  # the dark screenshot


def test_system_theme_follows_the_browser(bundled: Served, new_page: Any) -> None:
    page = new_page(color_scheme="dark")
    page.goto(bundled.url + "/ui/chat")
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    expect(page.get_by_role("heading", name=re.compile("^Chat with"))).to_be_visible()


def test_a_phone_sized_screen(bundled: Served, new_page: Any) -> None:
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(bundled.url + "/ui/models")
    expect(page.locator("[data-model]").first).to_be_visible()
    assert no_sideways_scroll(page)
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.get_by_role("button", name="Open menu").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Chat").click()
    page.wait_for_url("**/ui/chat")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    assert no_sideways_scroll(page)
    page.get_by_role("button", name="Settings").click()
    expect(page.get_by_role("dialog", name="Chat settings").get_by_label("Model")).to_be_visible()
    page.get_by_role("button", name="Close").click()
    for path in (
        "/ui/settings",
        "/ui/chat/speech",
        "/ui/chat/embeddings",
        "/ui/setup/folders",
        "/ui/configuration",
        "/ui/configuration/yaml",
        "/ui/downloads",
        "/ui/activity",
        "/ui/logs",
    ):
        page.goto(bundled.url + path)
        expect(page.locator("main h1").first).to_be_visible()
        assert no_sideways_scroll(page), path
    page.goto(bundled.url + "/ui/models")
    expect(page.locator("[data-model]").first).to_be_visible()  # the phone screenshot


def test_restart_banner_soft_and_hard_restart(small_server: Served, page: Any) -> None:
    page.goto(small_server.url + "/ui/models")
    expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
    # An answer that said needsRestart leaves a banner (kept across reloads) until a restart.
    page.evaluate(
        "() => localStorage.setItem('claracore.needsRestart', 'Model configuration updated! Restart.')"
    )
    page.reload()
    banner = page.get_by_role("status").filter(has_text="Model configuration updated!")
    expect(banner).to_be_visible()
    banner.get_by_role("button", name="Restart now").click()
    expect(page.get_by_text("Configuration reloaded")).to_be_visible()
    expect(banner).to_be_hidden()
    assert page.evaluate("() => localStorage.getItem('claracore.needsRestart')") is None

    # The menu's hard restart: a new process on the same port, and the page carries on.
    pid_before = small_server.proc.pid
    page.get_by_role("button", name="Restart").click()
    page.get_by_role("menuitem", name=re.compile("^Hard restart")).click()
    expect(page.get_by_text("Restarting the server…")).to_be_visible()
    expect(page.get_by_text("Server restarted")).to_be_visible(timeout=90_000)
    # Notices stack top centre under the header in one column of one width.
    notices = page.locator("[aria-live=polite] > *")
    boxes = [notices.nth(i).bounding_box() for i in range(notices.count())]
    header, width = page.locator("header").bounding_box(), page.viewport_size["width"]
    assert boxes and len({(round(b["x"]), round(b["width"])) for b in boxes}) == 1
    assert all(b["y"] >= header["y"] + header["height"] for b in boxes)
    assert boxes[0]["y"] <= header["y"] + header["height"] + 16  # right under it, not at the bottom
    assert all(abs(b["x"] + b["width"] / 2 - width / 2) <= 1 for b in boxes)
    shot(page, "toasts")
    expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
    expect(page.locator('[data-model="smollm2"]')).to_be_visible()
    assert small_server.proc.poll() is None and small_server.proc.pid == pid_before  # re-exec'd in place
    assert small_server.log.read_text().count("serving at") == 2


def test_the_indicator_shows_a_lost_server(tmp_path: Path, ui_built: Path, page: Any) -> None:
    config = write_config(tmp_path / "config.yaml", [smollm2_entry(bundled_models())])
    with claracore_serve(tmp_path, "--config", str(config)) as served:
        page.goto(served.url + "/ui/models")
        expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
    expect(page.get_by_role("status", name="Server: Reconnecting")).to_be_visible(timeout=15_000)
