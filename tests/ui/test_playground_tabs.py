"""The playground's other tabs with the bundled models: speech (Piper), transcription (Whisper),
embeddings and rerank (MiniLM). A new user hears a sentence and sees it transcribed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import Served

SENTENCE = "The quick brown fox jumps over the lazy dog."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture(scope="module")
def speech(bundled: Served) -> Served:
    kinds = {m["type"] for m in bundled.models().values()}
    if not {"stt", "tts"} <= kinds:
        pytest.skip("the Whisper and Piper model packages are not installed")
    pytest.importorskip("faster_whisper")
    pytest.importorskip("piper")
    return bundled


def test_speak_a_sentence_download_it_and_transcribe_it(speech: Served, page: Any, tmp_path: Path) -> None:
    page.goto(speech.url + "/ui/chat/speech")
    expect(page.get_by_label("Voice")).to_have_value("joe")
    page.get_by_label("Text").fill(SENTENCE)
    page.get_by_role("button", name="Speak").click()
    audio = page.get_by_test_id("speech-audio")
    expect(audio).to_be_visible(timeout=60_000)
    duration = audio.evaluate(
        "a => a.readyState >= 1 ? a.duration"
        " : new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration)))"
    )
    assert 1.0 < duration < 10.0  # the browser decoded a few seconds of speech
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "speech.wav" and saved.read_bytes()[:4] == b"RIFF"

    page.get_by_role("button", name="Transcribe this").click()
    page.wait_for_url("**/ui/chat/transcribe")
    transcript = page.get_by_test_id("transcript")
    expect(transcript).to_be_visible(timeout=60_000)
    assert words(transcript.inner_text()) == words(SENTENCE)

    # The same clip uploaded as a file, as subtitles.
    page.get_by_label("Output").select_option("srt")
    page.get_by_label("Audio file").set_input_files(str(saved))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    expect(transcript).to_contain_text("-->", timeout=60_000)
    expect(transcript).to_contain_text("fox")


def test_record_a_clip_with_the_microphone(speech: Served, page: Any) -> None:
    page.goto(speech.url + "/ui/chat/transcribe")
    expect(page.get_by_label("Model")).to_have_value("whisper-tiny.en")
    page.get_by_role("button", name="Record").click()
    stop = page.get_by_role("button", name=re.compile("^Stop recording"))
    expect(stop).to_contain_text("1.", timeout=10_000)  # a second of the fake microphone's tone
    stop.click()
    # The browser's own recording (webm/opus) is accepted and transcribed; a tone has no words.
    expect(page.get_by_role("region", name="Transcript")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"recording\.(webm|ogg)"))).to_be_visible()


@pytest.fixture(scope="module")
def embedding(bundled: Served) -> Served:
    if not any(m["type"] == "embedding" for m in bundled.models().values()):
        pytest.skip("the MiniLM package is not installed")
    return bundled


def test_embeddings_compare_texts(embedding: Served, page: Any) -> None:
    page.goto(embedding.url + "/ui/chat/embeddings")
    expect(page.get_by_label("Model")).to_have_value("all-minilm-l6-v2")
    page.get_by_role("button", name="Compare").click()
    table = page.get_by_role("table", name="Similarity matrix")
    expect(table).to_be_visible(timeout=60_000)
    expect(page.get_by_text("384 dimensions")).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(4)
    cells = [[float(c) for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(4)]
    assert [cells[i][i] for i in range(4)] == [1.0] * 4
    # "A man is eating food." is closer to "...eating a piece of bread." than to "The sky is blue today."
    assert cells[0][1] > cells[0][2] + 0.2
    assert cells[0][1] == cells[1][0]


def test_rerank_orders_documents(embedding: Served, page: Any) -> None:
    page.goto(embedding.url + "/ui/chat/rerank?model=all-minilm-l6-v2")
    expect(page.get_by_label("Model")).to_have_value("all-minilm-l6-v2")
    page.get_by_role("button", name="Rank").click()
    ranked = page.get_by_role("list", name="Ranked documents")
    expect(ranked).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Method: cosine")).to_be_visible()
    expect(ranked.get_by_role("listitem").first).to_contain_text("A man is eating a piece of bread.")
