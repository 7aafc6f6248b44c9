"""Text <-> tokens for a generating model: prompts in, and each token's bytes out.

A mixin rather than an object of its own because every caller (request preparation, response
assembly, the worker's per-token decode) already holds the runtime, and these calls are the
runtime's public face for text. Safe from any thread except `piece`'s shared buffer on a cache
miss, which the worker and the caller's thread only reach for tokens not seen before.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp

from claracore.inputs import check_token_ids
from claracore.runtime.native import tokenize as native_tokenize


class TokenText:
    """Tokenize and detokenize through one llama vocabulary, with each token's bytes cached."""

    vocab: Any
    n_vocab: int
    bos: int
    add_bos: bool

    def _init_text(self, vocab: Any) -> None:
        self.vocab = vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self.bos = llama_cpp.llama_vocab_bos(vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Tokenize; `add_special` adds BOS where the model wants one (never twice)."""
        tokens = native_tokenize(self.vocab, text, add_special=add_special, parse_special=parse_special)
        if len(tokens) >= 2 and tokens[0] == self.bos and tokens[1] == self.bos:
            tokens.pop(0)  # templates that write BOS themselves
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one token (cached: called once per generated token)."""
        cached = self._pieces.get(token)
        if cached is None:
            n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, False)
            cached = self._piece_buf.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def spelled(self, token: int) -> str:
        """A token's text with control tokens spelled out (`<s>`, `<|im_end|>`), where `piece`
        gives them none: what chat templates get as `bos_token` and `eos_token`, as llama-server
        passes them (a template that writes BOS itself is why `tokenize` drops a second one)."""
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 256, 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def fill_in_middle(self, prefix: list[int], suffix: list[int]) -> list[int] | None:
        """A prompt asking a code model for what goes between `prefix` and `suffix`, in the
        prefix-suffix-middle order llama-server's infill uses; None without FIM tokens."""
        v = self.vocab
        pre = llama_cpp.llama_vocab_fim_pre(v)
        suf = llama_cpp.llama_vocab_fim_suf(v)
        mid = llama_cpp.llama_vocab_fim_mid(v)
        if min(pre, suf, mid) < 0:
            return None
        bos = [self.bos] if self.add_bos and self.bos >= 0 else []
        return [*bos, pre, *prefix, suf, *suffix, mid]

    def detokenize(self, tokens: list[int]) -> str:
        """The text of `tokens`; an id outside the vocabulary is a 400, never a native abort."""
        check_token_ids(tokens, self.n_vocab)
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return self.piece(token).decode("utf-8", errors="replace")
