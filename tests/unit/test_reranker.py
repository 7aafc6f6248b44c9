"""The rerank runtime on the tiny random rank-pooled BERT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claracore.errors import InvalidRequestError
from claracore.runtime.embedding import EmbeddingOptions
from claracore.runtime.reranker import RerankRuntime

DOCS = ["the cat", "a dog is red", "hello world", "sun", "blue sea and red sun", ""]


@pytest.fixture(scope="module")
def runtime(tiny_rerank: Path) -> Iterator[RerankRuntime]:
    rt = RerankRuntime(EmbeddingOptions(path=str(tiny_rerank), n_seq=4, n_batch=24))
    yield rt
    rt.close()


def test_metadata(runtime: RerankRuntime) -> None:
    assert runtime.kind == "reranker"
    assert runtime.pooling == 4  # rank
    assert runtime.n_cls_out == 1


def test_pair_format_is_cls_query_sep_doc_sep(runtime: RerankRuntime) -> None:
    q = runtime.tokenize("yes", add_special=False)
    d = runtime.tokenize("the cat", add_special=False)
    assert runtime.pair_tokens(q, d) == [2, *q, 3, *d, 3]


def test_one_score_per_document_deterministic_and_batch_independent(runtime: RerankRuntime) -> None:
    scores = runtime.score("the cat is", DOCS)
    assert len(scores) == len(DOCS) and all(type(s) is float for s in scores)
    assert runtime.score("the cat is", DOCS) == pytest.approx(scores, abs=1e-6)
    alone = [runtime.score("the cat is", [d])[0] for d in DOCS]
    assert alone == pytest.approx(scores, abs=1e-5)
    assert len({round(s, 6) for s in scores}) > 1  # documents score differently
    order = sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert sorted(order) == list(range(len(DOCS)))
    assert runtime.score("the cat is", []) == []


def test_too_long_pair_names_the_document(runtime: RerankRuntime) -> None:
    long_doc = " ".join(["cat"] * (runtime.n_ctx + 5))
    with pytest.raises(InvalidRequestError) as err:
        runtime.score("hello", ["sun", long_doc])
    assert err.value.param == "documents.1"


def test_embedding_model_is_not_a_reranker(tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match="rank"):
        RerankRuntime(EmbeddingOptions(path=str(tiny_bert)))
