"""The download parts that need no network: naming and grouping a repository's files, the pick
for this machine, heads read from a prefix, scaled estimates, backoff, and the SQLite records."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from claracore.manage.downloads.catalog import _recommend, _scaled, group_files, quantization, split_paths
from claracore.manage.downloads.hub import RemoteFile
from claracore.manage.downloads.records import Download, DownloadFile, DownloadTable, Meter
from claracore.manage.downloads.transfer import Retry, TransferError, _content_range
from claracore.manage.store import Store
from claracore.modelfile.estimate import estimate_llm
from claracore.modelfile.gguf import info_from_parts, read_gguf
from claracore.modelfile.reader import TruncatedHeadError, parse, parse_stream
from claracore.protocol.downloads import Fit, RepoModel


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-0.5b-instruct-q8_0.gguf", "Q8_0"),
        ("gemma-3-4b-it-IQ4_XS.gguf", "IQ4_XS"),
        ("Q8_0/model-Q5_K_S-00001-of-00003.gguf", "Q5_K_S"),
        ("phi-4-BF16.gguf", "BF16"),
        ("model.F16.gguf", "F16"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("llama-Q8_0-requant-Q4_K_M.gguf", "Q4_K_M"),  # the last one names what the file is
        ("model.gguf", None),
        ("Q4-news.gguf", None),
    ],
)
def test_quantisation_is_read_from_the_file_name(name: str, quant: str | None) -> None:
    assert quantization(name) == quant


def _f(path: str, size: int = 10) -> RemoteFile:
    return RemoteFile(path, size, None)


def test_split_parts_are_one_model_and_projectors_are_apart() -> None:
    files = [
        _f("README.md"),
        _f("m-Q4_K_M.gguf"),
        _f("Q8_0/m-Q8_0-00002-of-00002.gguf", 20),
        _f("Q8_0/m-Q8_0-00001-of-00002.gguf", 30),
        _f("F16/m-F16-00001-of-00003.gguf"),
        _f("F16/m-F16-00003-of-00003.gguf"),
        _f("mmproj-m-f16.gguf"),
    ]
    groups, projectors = group_files(files)
    assert [[f.path for f in g.files] for g in groups] == [
        ["F16/m-F16-00001-of-00003.gguf", "F16/m-F16-00003-of-00003.gguf"],
        ["Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf"],
        ["m-Q4_K_M.gguf"],
    ]
    assert [(g.split, g.complete, g.size) for g in groups] == [
        (True, False, 20),
        (True, True, 50),
        (False, True, 10),
    ]
    assert [p.path for p in projectors] == ["mmproj-m-f16.gguf"]
    assert split_paths("Q8_0/m-Q8_0-00002-of-00002.gguf") == [
        "Q8_0/m-Q8_0-00001-of-00002.gguf",
        "Q8_0/m-Q8_0-00002-of-00002.gguf",
    ]
    assert split_paths("m.gguf") == ["m.gguf"]


def _model(name: str, verdict: str, size: int, quant: str | None) -> RepoModel:
    return RepoModel(
        name=name,
        filename=name,
        files=[name],
        size=size,
        quantization=quant,
        split=False,
        complete=True,
        kind="llm",
        mmproj=[],
        fit=Fit(verdict=verdict),  # type: ignore[arg-type]
        recommended=False,
    )


def test_the_pick_runs_in_the_best_place_then_prefers_q4_k_m_then_the_largest() -> None:
    gpu_small = _model("a-Q2_K", "gpu", 1, "Q2_K")
    gpu_q4 = _model("b-Q4_K_M", "gpu", 2, "Q4_K_M")
    gpu_big = _model("c-Q6_K", "gpu", 3, "Q6_K")
    ram_q4 = _model("d-Q4_K_M", "ram", 2, "Q4_K_M")
    assert _recommend([ram_q4, gpu_small, gpu_big, gpu_q4]) is gpu_q4
    assert _recommend([ram_q4, gpu_small, gpu_big]) is gpu_big
    assert _recommend([_model("x", "too_big", 9, None), ram_q4]) is ram_q4
    assert _recommend([_model("x", "too_big", 9, None)]) is None


def test_a_head_is_parsed_from_a_prefix_and_says_when_it_needs_more(tiny_llama: Path) -> None:
    data = tiny_llama.read_bytes()
    whole = parse(tiny_llama)
    with pytest.raises(TruncatedHeadError):
        parse_stream(io.BytesIO(data[:1000]), len(data), tiny_llama)
    head = parse_stream(io.BytesIO(data[: whole.data_offset]), len(data), tiny_llama)  # no weights
    assert head == whole
    assert info_from_parts(tiny_llama, head) == read_gguf(tiny_llama)


def test_another_quantisation_is_priced_from_the_header_scaled_to_its_size(tiny_llama: Path) -> None:
    info = read_gguf(tiny_llama)
    double = _scaled(info, info.data_offset + 2 * info.tensor_bytes)
    assert double.tensor_bytes == 2 * info.tensor_bytes
    assert sum(double.layer_bytes) == pytest.approx(2 * sum(info.layer_bytes), abs=info.block_count)
    assert (double.block_count, double.head_count_kv, double.context_length) == (
        info.block_count,
        info.head_count_kv,
        info.context_length,
    )
    one, two = (estimate_llm(i, n_ctx=256) for i in (info, double))
    assert two.weights_ram - one.weights_ram == pytest.approx(info.tensor_bytes, rel=0.01)
    assert two.kv_bytes == one.kv_bytes  # the shape, and so the cache, is the same


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after() -> None:
    retry = Retry(attempts=5, delay=0.5, max_delay=3)
    assert [retry.wait(n, None) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]
    assert retry.wait(1, 7.0) == 7.0 and retry.wait(1, 1e9) == 12


def test_content_range_is_parsed_or_refused() -> None:
    assert _content_range("bytes 100-199/1000") == (100, 199, 1000)
    assert _content_range("bytes */1000") == (None, None, 1000)
    assert _content_range("bytes 0-9/*") == (0, 9, None)
    with pytest.raises(TransferError):
        _content_range("items 1-2/3")


def test_speed_is_measured_over_the_last_seconds() -> None:
    meter = Meter()
    assert meter.rate == 0
    for t in range(20):
        meter.add(t * 1000 if t < 10 else 10_000 + (t - 10) * 100, now=float(t))
    assert meter.rate == pytest.approx(100)  # the old fast second is out of the window


def test_records_round_trip_through_sqlite_and_the_view_never_shows_the_token(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    table = DownloadTable(store)
    d = Download(
        id="dl-1",
        source="hub",
        target_dir=str(tmp_path),
        files=[DownloadFile("a.gguf", "http://h/a", 100, "ab" * 32, done=40, validator='"x"')],
        repo="o/r",
        token="hf_secret_token_value",
        model_id="m",
    )
    table.save(d)
    (back,) = DownloadTable(Store(tmp_path / "db.sqlite")).load()
    assert back.files == d.files and back.token == d.token and back.repo == "o/r" and back.model_id == "m"
    view = back.view().model_dump_json()
    assert "hf_secret_token_value" not in view and '"bytesDone":40' in view and '"progress":0.4' in view
    table.delete("dl-1")
    assert table.load() == []
    store.close()
