"""The embedding runtime on the tiny random mean-pooled BERT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from claracore.errors import InvalidRequestError, ModelUnavailableError
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
