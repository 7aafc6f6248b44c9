"""The embedding runtime on the tiny random mean-pooled BERT."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from claracore.errors import InvalidRequestError, ModelUnavailableError
from claracore.manage.convert import cached_conversion, convert_bert, read_safetensors
from claracore.runtime.embedding import EmbeddingOptions, EmbeddingRuntime

TEXTS = ["hello world", "the cat is red", "a dog", "yes", "sun sea red blue", "the the the"]


@pytest.fixture(scope="module")
def runtime(tiny_bert: Path) -> Iterator[EmbeddingRuntime]:
    # Small batches (3 sequences, few tokens) so a list of inputs spans several decodes.
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(tiny_bert), n_seq=3, n_batch=16), name="tiny")
    yield rt
    rt.close()


def test_metadata(runtime: EmbeddingRuntime) -> None:
    assert runtime.kind == "embedding"
    assert runtime.n_embd == 32
    assert runtime.n_ctx == 128  # capped at the trained context
    assert runtime.pooling == 1  # mean, from the GGUF


def test_tokenize_adds_cls_and_sep(runtime: EmbeddingRuntime) -> None:
    tokens = runtime.tokenize("hello world")
    assert tokens[0] == 2 and tokens[-1] == 3 and len(tokens) == 4


def test_batch_is_normalised_and_matches_one_by_one(runtime: EmbeddingRuntime) -> None:
    inputs = [runtime.tokenize(t) for t in TEXTS]
    together = np.array(runtime.embed(inputs))
    assert together.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.array([runtime.embed([x])[0] for x in inputs])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # same text, different batch neighbours
    shuffled = np.array(runtime.embed(inputs[::-1]))[::-1]
    np.testing.assert_allclose(together, shuffled, atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-3  # different texts differ


def test_plain_python_floats_and_unnormalised(runtime: EmbeddingRuntime) -> None:
    raw = runtime.embed([runtime.tokenize("hello")], normalize=False)
    assert isinstance(raw, list) and isinstance(raw[0], list) and type(raw[0][0]) is float
    norm = runtime.embed([runtime.tokenize("hello")])
    scale = np.linalg.norm(raw[0])
    np.testing.assert_allclose(np.array(raw[0]) / scale, norm[0], atol=1e-6)
    assert runtime.embed([]) == []


def test_too_long_and_empty_inputs_name_their_index(runtime: EmbeddingRuntime) -> None:
    ok = runtime.tokenize("hello")
    with pytest.raises(InvalidRequestError) as err:
        runtime.embed([ok, ok, [5] * (runtime.n_ctx + 1)])
    assert err.value.param == "input.2"
    with pytest.raises(InvalidRequestError) as err:
        runtime.embed([ok, []])
    assert err.value.param == "input.1"
    with pytest.raises(InvalidRequestError) as err:
        runtime.embed([[10**6]])
    assert err.value.param == "input.0"
    # exactly n_ctx tokens is fine
    assert len(runtime.embed([[5] * runtime.n_ctx])[0]) == 32


def test_threads_share_one_context_safely(runtime: EmbeddingRuntime) -> None:
    inputs = [runtime.tokenize(t) for t in TEXTS]
    expected = np.array(runtime.embed(inputs))
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            results.append(np.array(runtime.embed(inputs)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-5)


def test_odd_sequence_counts_load(tiny_bert: Path) -> None:
    """n_batch not divisible by n_seq used to abort the process inside llama.cpp."""
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(tiny_bert), n_seq=7, n_batch=100))
    try:
        assert rt.n_batch % 7 == 0
        assert len(rt.embed([rt.tokenize(t) for t in TEXTS])) == len(TEXTS)
    finally:
        rt.close()


def test_close_then_embed_fails(tiny_bert: Path) -> None:
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(tiny_bert)))
    rt.close()
    rt.close()  # idempotent
    with pytest.raises(ModelUnavailableError):
        rt.embed([[2, 5, 3]])


def test_bad_files_raise_value_error(tmp_path: Path, corrupt_gguf: Path, tiny_llama: Path) -> None:
    with pytest.raises(ValueError):
        EmbeddingRuntime(EmbeddingOptions(path=str(tmp_path / "missing.gguf")))
    with pytest.raises(ValueError):
        EmbeddingRuntime(EmbeddingOptions(path=str(corrupt_gguf)))


# ---------------------------------------------------------------- the BERT converter, on a tiny folder


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: tuple[str, ...] = ()) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        if name in bf16:
            raw = (arr.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
            dtype = "BF16"
        else:
            raw, dtype = arr.astype(np.float32).tobytes(), "F32"
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def _tiny_st_folder(folder: Path, pooling: str = "cls") -> Path:
    """A random 1-layer sentence-transformers BERT, as the Hugging Face hub lays one out."""
    r = np.random.default_rng(5)
    d, ff, n_pos = 16, 32, 64
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "cat", "##s", "the", "."]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    cfg = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": d,
        "intermediate_size": ff,
        "max_position_embeddings": n_pos,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    modes = {f"pooling_mode_{m}": m.startswith(pooling) for m in ("cls_token", "mean_tokens", "max_tokens")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(modes))

    def t(*shape: int) -> np.ndarray:
        return r.standard_normal(shape).astype(np.float32) * 0.1

    w = {
        "embeddings.position_ids": np.arange(n_pos, dtype=np.float32)[None],
        "embeddings.word_embeddings.weight": t(len(vocab), d),
        "embeddings.position_embeddings.weight": t(n_pos, d),
        "embeddings.token_type_embeddings.weight": t(2, d),
        "embeddings.LayerNorm.weight": np.ones(d, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(d, np.float32),
        "pooler.dense.weight": t(d, d),
        "pooler.dense.bias": t(d),
    }
    p = "encoder.layer.0."
    for name in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ):
        w[p + name + ".weight"], w[p + name + ".bias"] = t(d, d), t(d)
    w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = t(ff, d), t(ff)
    w[p + "output.dense.weight"], w[p + "output.dense.bias"] = t(d, ff), t(d)
    for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
        w[p + ln + ".weight"], w[p + ln + ".bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
    _write_safetensors(folder / "model.safetensors", w, bf16=("embeddings.word_embeddings.weight",))
    return folder


def test_convert_tiny_folder_then_embed(tmp_path: Path) -> None:
    folder = _tiny_st_folder(tmp_path / "st")
    out = convert_bert(folder, tmp_path / "out" / "tiny.gguf")
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(out)))
    try:
        assert (rt.n_embd, rt.n_ctx, rt.pooling) == (16, 64, 2)  # CLS pooling from 1_Pooling
        assert rt.tokenize("hello cats.") == [2, 5, 7, 8, 10, 3]  # ##s joins its word
        vecs = rt.embed([rt.tokenize("hello world"), rt.tokenize("the cat")])
        assert len(vecs) == 2 and abs(np.linalg.norm(vecs[0]) - 1) < 1e-5
    finally:
        rt.close()
    weights = read_safetensors(folder / "model.safetensors")  # BF16 widened to f32
    assert weights["embeddings.word_embeddings.weight"].dtype == np.float32


def test_cached_conversion_reuses_and_invalidates(tmp_path: Path) -> None:
    folder = _tiny_st_folder(tmp_path / "st")
    cache = tmp_path / "cache"
    first = cached_conversion(folder, cache)
    mtime = first.stat().st_mtime_ns
    assert cached_conversion(folder, cache) == first and first.stat().st_mtime_ns == mtime
    cfg = json.loads((folder / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))  # new size and mtime
    second = cached_conversion(folder, cache)
    assert second != first and second.exists()
    assert sorted(p.suffix for p in cache.iterdir()) == [".gguf", ".gguf"]  # no temp files left


def test_convert_rejects_what_llama_cpp_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max"):
        convert_bert(_tiny_st_folder(tmp_path / "max", pooling="max"), tmp_path / "max.gguf")
    with pytest.raises(ValueError, match=r"no config\.json"):
        convert_bert(tmp_path / "empty", tmp_path / "empty.gguf")
    assert not (tmp_path / "max.gguf").exists()


def test_concurrent_calls_share_one_decode(tiny_bert: Path) -> None:
    """Calls that arrive while the context is busy are decoded together, not one after another."""
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(tiny_bert)))
    try:
        texts = ["the cat", "a red dog", "hello world", "blue sea"]
        alone = [rt.embed([rt.tokenize(t)])[0] for t in texts]
        decodes: list[int] = []
        real = rt._decode

        def counting(inputs: Any, group: range) -> None:
            decodes.append(len(group))
            real(inputs, group)

        rt._decode = counting  # type: ignore[method-assign]
        results: dict[int, list[float]] = {}
        with rt._lock:  # the context is busy: every call below queues behind it
            workers = [
                threading.Thread(
                    target=lambda i=i: results.__setitem__(i, rt.embed([rt.tokenize(texts[i])])[0])
                )
                for i in range(4)
            ]
            for w in workers:
                w.start()
            deadline = time.monotonic() + 5
            while len(rt._pending) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        for w in workers:
            w.join(10)
        assert decodes == [4]  # one decode, four sequences
        for i in range(4):
            assert np.allclose(results[i], alone[i], atol=1e-5)
    finally:
        rt.close()
