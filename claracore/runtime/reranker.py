"""The rerank runtime: a cross-encoder scoring (query, document) pairs, one sequence per pair.

A rank-pooled GGUF (bge-reranker, jina-reranker, any BertForSequenceClassification) runs its
classification head inside llama.cpp's graph; `llama_get_embeddings_seq` then holds
`llama_model_n_cls_out` values per sequence, of which the first is the relevance score.
`Llama.embed()` reads n_embd values there, past the end of the buffer: wrong for rank models.
"""

from __future__ import annotations

import llama_cpp

from claracore.runtime.embedding import EmbeddingOptions, EmbeddingRuntime


class RerankRuntime(EmbeddingRuntime):
    """A loaded rank-pooled model; `score` is thread-safe (the embedding runtime's lock)."""

    kind = "reranker"
    _param = "documents"

    def __init__(self, options: EmbeddingOptions, *, name: str = "") -> None:
        """Load the model; ValueError on a bad file or one without rank pooling."""
        super().__init__(options, name=name)
        if self.pooling != llama_cpp.LLAMA_POOLING_TYPE_RANK:
            self.close()
            raise ValueError("the model has no rank pooling (classification head): it is not a reranker")
        self.n_cls_out = max(1, int(llama_cpp.llama_model_n_cls_out(self._model.model)))
        v = self.vocab
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(v))
        self._add_eos = bool(llama_cpp.llama_vocab_get_add_eos(v))
        self._add_sep = bool(llama_cpp.llama_vocab_get_add_sep(v))
        self._bos = llama_cpp.llama_vocab_bos(v)
        self._sep = llama_cpp.llama_vocab_sep(v)
        eos = llama_cpp.llama_vocab_eos(v)
        self._eos = eos if eos >= 0 else self._sep

    def pair_tokens(self, query: list[int], document: list[int]) -> list[int]:
        """The model's pair input from plain (special-free) query and document tokens.

        As llama.cpp's server formats rerank prompts: BOS query [EOS] [SEP] document [EOS], each
        special only where the vocab asks for it, so XLM-R rerankers get
        `<s> q </s></s> d </s>`. BERT vocabs add SEP but no EOS; they get the closing [SEP] too,
        `[CLS] q [SEP] d [SEP]`, the pair format BERT cross-encoders are trained on.
        """
        out: list[int] = [self._bos] if self._add_bos and self._bos >= 0 else []
        out += query
        if self._add_eos:
            out.append(self._eos)
        if self._add_sep:
            out.append(self._sep)
        out += document
        if self._add_eos:
            out.append(self._eos)
        elif self._add_sep:
            out.append(self._sep)
        return out

    def score(self, query: str, documents: list[str]) -> list[float]:
        """One relevance score per document, in the documents' order (higher is more relevant).

        Raises InvalidRequestError naming `documents.N` when its pair with the query exceeds the
        context; nothing is decoded then. An empty document still scores (the pair is not empty).
        """
        if not documents:
            return []
        q = self.tokenize(query, add_special=False)
        pairs = [self.pair_tokens(q, self.tokenize(doc, add_special=False)) for doc in documents]
        self._check(pairs, "documents")
        rows = self._pooled(pairs, self.n_cls_out)
        return [float(x) for x in rows[:, 0]]
