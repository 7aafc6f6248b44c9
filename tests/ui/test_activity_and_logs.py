"""Activity and logs: the requests a test made show as rows (and live), the stat cards add them
up, the charts draw, filters live in the URL and survive a reload, CSV export; the logs view
follows new lines, filters by level, source and text, downloads, and holds 100,000 lines with
only the visible rows in the page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.ui.conftest import Served, shot, wait_until

# Pixels of the first series' colour (the brand's, #5b4cf0) on a chart's canvas.
BRAND_PIXELS = """(title) => {
  const canvas = document.querySelector(`figure[aria-label="${title}"] canvas`);
  const { width, height } = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let n = 0;
  const near = (i, v) => Math.abs(data[i] - v) < 30;
  for (let i = 0; i < data.length; i += 4) {
    if (near(i, 91) && near(i + 1, 76) && near(i + 2, 240) && data[i + 3] > 100) n++;
  }
  return n;
}"""


def chat(served: Served, model: str = "smollm2", tokens: int = 8) -> httpx.Response:
    messages = [{"role": "user", "content": "Count to five."}]
    body = {"model": model, "messages": messages, "max_tokens": tokens, "temperature": 0}
    return served.post("/v1/chat/completions", json=body)


def rows(page: Any) -> Any:
    return page.get_by_role("table", name="Requests").locator("[data-request]")


def stat(page: Any, label: str) -> Any:
    return page.get_by_role("region", name=label, exact=True).locator("[data-value]")


def test_activity_shows_the_requests_made_and_draws_them(small_server: Served, page: Any) -> None:
    for _ in range(3):
        assert chat(small_server).status_code == 200
    assert chat(small_server, model="nope").status_code == 404
    page.goto(small_server.url + "/ui/activity")
    expect(rows(page)).to_have_count(4)
    expect(stat(page, "Requests")).to_have_text("4")
    expect(stat(page, "Errors")).to_have_text("1")
    expect(stat(page, "Tokens")).not_to_have_text("0")
    expect(stat(page, "Generation speed")).to_contain_text("tok/s")
    expect(page.get_by_role("table", name="Requests")).to_contain_text("MODEL_NOT_FOUND")

    speed = page.get_by_role("figure", name="Generation speed per request")
    expect(speed).to_have_attribute("data-points", "3")
    drawn = lambda: page.evaluate(BRAND_PIXELS, "Generation speed per request") > 20  # noqa: E731
    wait_until(drawn, 10, "the speed chart to draw")
    ttft = page.get_by_role("figure", name="Time to first token per request")
    expect(ttft).to_have_attribute("data-points", "3")

    # A request made now appears without a reload, and the memory chart fills from metrics events.
    assert chat(small_server).status_code == 200
    expect(rows(page)).to_have_count(5)
    expect(speed).to_have_attribute("data-points", "4")
    expect(page.get_by_role("figure", name="Pool memory against the budget")).to_be_visible(timeout=20_000)
    shot(page, "activity")

    # Filters and sorting go into the URL and survive a reload.
    page.get_by_label("Outcome").select_option("error")
    expect(rows(page)).to_have_count(1)
    expect(stat(page, "Requests")).to_have_text("1")
    page.reload()
    expect(rows(page)).to_have_count(1)
    assert "status=error" in page.url
    page.get_by_label("Outcome").select_option("all")
    page.get_by_role("button", name="TTFT").click()
    expect(page.locator('th[aria-sort="descending"]')).to_have_text("TTFT")
    page.get_by_role("button", name="TTFT").click()
    expect(page.locator('th[aria-sort="ascending"]')).to_have_text("TTFT")
    assert "sort=ttft" in page.url and "order=asc" in page.url
    ttfts = rows(page).locator("td:nth-child(7)").all_inner_texts()
    assert ttfts[-1] == "—" and "—" not in ttfts[:-1]  # the failed request has none: last either way

    with page.expect_download() as download:
        page.get_by_role("button", name="CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("time,id,model,route,status,errorCode") and len(lines) == 6
    assert sum("MODEL_NOT_FOUND" in line for line in lines) == 1


def test_the_logs_follow_new_lines_and_filter(small_server: Served, page: Any) -> None:
    # Every text the follow state shows, from the first render: a first connect is no "Reconnecting".
    page.add_init_script(
        "window.__follow = []; new MutationObserver(() => { const el = document.querySelector("
        "'[data-follow]'); if (el && window.__follow.at(-1) !== el.textContent) "
        "window.__follow.push(el.textContent); }).observe(document, "
        "{subtree: true, childList: true, characterData: true});"
    )
    page.goto(small_server.url + "/ui/logs")
    log = page.get_by_role("log", name="Log lines")
    expect(log).to_contain_text("Application startup complete")
    expect(page.get_by_role("status", name="Log status")).to_contain_text("Live")
    assert page.evaluate("window.__follow")[-1] == "Live"
    assert "Reconnecting" not in page.evaluate("window.__follow")
    assert chat(small_server).status_code == 200
    expect(log).to_contain_text("chat model=smollm2")  # a new line, live

    page.get_by_role("searchbox", name="Search the log").fill("chat model=")
    expect(log.locator("[data-log-row]")).to_have_count(1)
    page.reload()  # the filter is in the URL
    expect(log.locator("[data-log-row]")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = Path(download.value.path()).read_text()
    assert "chat model=smollm2" in saved and len(saved.splitlines()) == 1

    page.get_by_role("searchbox", name="Search the log").fill("")
    page.get_by_role("group", name="Sources").get_by_role("button", name="uvicorn").click()
    expect(log).not_to_contain_text("Application startup complete")
    expect(log).to_contain_text("chat model=smollm2")
    page.get_by_label("Level").select_option("error")
    expect(log).to_contain_text("No line matches the filters.")

    page.get_by_label("Level").select_option("debug")
    page.get_by_role("button", name="Pause").click()
    assert chat(small_server).status_code == 200
    expect(page.get_by_role("button", name=re.compile(r"^Resume \(\d+ new\)$"))).to_be_visible()
    expect(log.locator("[data-log-row]").filter(has_text="chat model=smollm2")).to_have_count(1)
    page.get_by_role("button", name=re.compile("^Resume")).click()
    expect(log.locator("[data-log-row]").filter(has_text="chat model=smollm2")).to_have_count(2)


def test_a_hundred_thousand_lines_stay_a_few_rows_in_the_page(bundled: Served, page: Any) -> None:
    lines = []
    for i in range(100_000):
        message = f"needle {i}" if i % 10_000 == 0 else f"line {i}"
        data = {"time": "2026-01-01T00:00:00.000Z", "level": "info", "source": "claracore"}
        data |= {"logger": "t", "message": message}
        lines.append(f"event: log\ndata: {json.dumps({'type': 'log', 'data': data})}\n\n")
    body = "retry: 3000\n\n" + "".join(lines)
    served_once: list[bool] = []

    def answer(route: Any) -> None:  # the stream once (this page's server would stream its own log)
        if served_once:
            route.abort()
        else:
            served_once.append(True)
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/api/logs?follow=1*", answer)
    page.goto(bundled.url + "/ui/logs")
    status = page.get_by_role("status", name="Log status")
    expect(status).to_contain_text("100,000 shown of 100,000 lines", timeout=30_000)
    log = page.get_by_role("log", name="Log lines")
    expect(log.locator('[data-log-row="99999"]')).to_be_visible()  # it follows the newest line
    assert log.locator("[data-log-row]").count() < 150
    log.evaluate("e => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); }")
    expect(log.locator('[data-log-row="0"]')).to_contain_text("needle 0")
    expect(page.get_by_role("button", name="Jump to latest")).to_be_visible()
    assert log.locator("[data-log-row]").count() < 150
    page.get_by_role("searchbox", name="Search the log").fill("needle")
    expect(status).to_contain_text("10 shown of 100,000 lines")
    page.get_by_role("button", name="Jump to latest").click()
    expect(log.locator('[data-log-row="9"]')).to_contain_text("needle 90000")
