"""The built web UI stays small: what the first page load needs, and each page loaded on its own.

A page that grows past its budget (a chart, YAML or highlighting library pulled into the first
load by an eager import, say) fails here with the sizes, instead of slowing every first visit.
Sizes are gzip, as a browser or proxy that compresses would send them; the figures are logged
(`pytest --log-cli-level=INFO`) for the record.
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

#: The first load: index.html, its entry script and stylesheet (react, the shell, the models page).
FIRST_LOAD_BUDGET = 130 * 1024
#: Any one chunk loaded later, when its page opens (the playground and the editor are the largest).
CHUNK_BUDGET = 64 * 1024
#: Part 2's pages, each loaded only when opened.
LAZY_PAGES = ("Setup", "Configuration", "Downloads", "Activity", "Logs")


def gzipped(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def test_the_first_load_and_every_page_stay_within_budget(ui_built: Path) -> None:
    index = ui_built / "index.html"
    first = re.findall(r'(?:src|href)="/ui/(assets/[^"]+\.(?:js|css))"', index.read_text())
    assert any(name.endswith(".js") for name in first), f"no entry script in {index}"
    first_load = gzipped(index) + sum(gzipped(ui_built / name) for name in first)
    chunks = {p.name: gzipped(p) for p in (ui_built / "assets").iterdir() if p.suffix in {".js", ".css"}}
    later = {name: size for name, size in chunks.items() if f"assets/{name}" not in first}
    log.info("first load %.1f KiB gzip", first_load / 1024)
    for name, size in sorted(later.items(), key=lambda item: -item[1]):
        log.info("later: %s %.1f KiB gzip", name, size / 1024)

    assert first_load <= FIRST_LOAD_BUDGET, f"first load {first_load} B gzip > {FIRST_LOAD_BUDGET}"
    too_big = {name: size for name, size in later.items() if size > CHUNK_BUDGET}
    assert not too_big, f"chunks over {CHUNK_BUDGET} B gzip: {too_big}"
    for page in LAZY_PAGES:
        assert any(re.fullmatch(rf"{page}-[\w-]+\.js", name) for name in later), f"{page} is not a lazy chunk"
