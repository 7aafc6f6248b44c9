"""The UI's live state comes from the event stream, not from polling: another client's load,
eviction and unload show on the open page with no `GET /v1/models` after it loaded, with the
load's progress and the reason a model left memory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.ui.conftest import Served, claracore_serve, wait_until, write_config

# Records every load percent the card shows (data-progress), however briefly it shows it.
WATCH_PROGRESS = """(id) => {
  window.__progress = [];
  const card = document.querySelector(`[data-model="${id}"]`);
  new MutationObserver(() => {
    const p = card.getAttribute("data-progress");
    if (p !== null) window.__progress.push(Number(p));
  }).observe(card, { attributes: true, attributeFilter: ["data-progress"] });
}"""


def refuse_polls(page: Any) -> list[str]:
    """From now on every `GET /v1/models` the page makes fails (and is counted): what the page
    shows after this can only have come from the event stream."""
    seen: list[str] = []

    def refuse(route: Any) -> None:
        seen.append(route.request.url)
        route.abort()

    page.route("**/v1/models*", refuse)
    return seen


def metrics_seen(page: Any) -> int:
    """How many `metrics` events the page has taken in (one memory sample each, every 5 s)."""
    saved = "sessionStorage.getItem('claracore.memorySamples') || '[]'"
    return int(page.evaluate(f"() => JSON.parse({saved}).length"))


def test_another_clients_load_shows_with_its_progress_without_polling(bundled: Served, page: Any) -> None:
    bundled.post("/api/models/unload", json={})
    page.goto(bundled.url + "/ui/models")
    smol = page.locator('[data-model="smollm2"]')
    expect(smol).to_have_attribute("data-state", "unloaded")
    expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
    polled = refuse_polls(page)
    metrics_before = metrics_seen(page)
    page.evaluate(WATCH_PROGRESS, "smollm2")

    assert bundled.post("/api/models/smollm2/load", json={}).status_code == 200
    expect(smol).to_have_attribute("data-state", "loaded", timeout=30_000)
    progress = page.evaluate("window.__progress")
    assert progress and all(0 <= p <= 100 for p in progress), progress
    assert bundled.post("/api/models/smollm2/unload", json={}).status_code == 200
    expect(smol).to_have_attribute("data-state", "unloaded", timeout=10_000)
    expect(smol.locator("[data-note]")).to_have_count(0)  # the user's own unload needs no note
    # Two metrics events later (5 s apart), a poller (every 2 s) would have asked at least twice.
    wait_until(lambda: metrics_seen(page) >= metrics_before + 2, 20, "two metrics events on the page")
    assert polled == [], "the page polled /v1/models while the stream was live"


def test_an_eviction_says_which_model_took_the_room(
    tmp_path: Path, ui_built: Path, tiny_llama: Path, page: Any
) -> None:
    for name in ("a", "b"):
        shutil.copy(tiny_llama, tmp_path / f"{name}.gguf")
    entry = {"context_length": 256, "parallel": 2, "batch_size": 256}
    config = write_config(
        tmp_path / "config.yaml",
        [{"name": n, "model": str(tmp_path / f"{n}.gguf"), **entry} for n in ("a", "b")],
        memory={"ram_gb": 0.002, "vram_gb": 0},  # ~2 MB: room for one tiny model, not two
    )
    with claracore_serve(tmp_path, "--config", str(config)) as served:
        page.goto(served.url + "/ui/models")
        a, b = page.locator('[data-model="a"]'), page.locator('[data-model="b"]')
        expect(a).to_have_attribute("data-state", "unloaded")
        expect(page.get_by_role("status", name="Server: Connected")).to_be_visible()
        polled = refuse_polls(page)

        assert served.post("/api/models/a/load", json={}).status_code == 200
        expect(a).to_have_attribute("data-state", "loaded")
        assert served.post("/api/models/b/load", json={}).status_code == 200
        expect(b).to_have_attribute("data-state", "loaded")
        expect(a).to_have_attribute("data-state", "unloaded")
        expect(a.locator("[data-note]")).to_have_text("Unloaded: evicted to make room for b")
        # Loading it again clears the note.
        assert served.post("/api/models/a/load", json={}).status_code == 200
        expect(a).to_have_attribute("data-state", "loaded")
        expect(a.locator("[data-note]")).to_have_count(0)
        expect(b.locator("[data-note]")).to_have_text("Unloaded: evicted to make room for a")
        assert polled == []
