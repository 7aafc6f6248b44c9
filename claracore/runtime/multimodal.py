"""Images and audio in a chat prompt, through llama.cpp's multimodal library (libmtmd).

A model with a projector (`mmproj`) gets a `Projector`. Preparing a request, `Projector.tokenize`
turns the rendered prompt, whose media parts are the library's marker, plus each part's bytes
into one token list in which each image (or audio clip) is a run of placeholder ids, and a
`MediaPrompt` that knows which native chunk each run stands for.

Placeholders are negative, so they never collide with a token, and derived from the chunk's
hash of its media: the slots' prefix reuse compares token lists, so a cached prefix can match
across the same image but never across different ones. A run is as long as the positions the
media takes (for M-RoPE models fewer than its embeddings), so a slot's token count stays its
next position.

In the worker (`Multimodal._decode_media_heads`), a slot whose pending prompt starts with a
run has the chunk encoded and its embeddings decoded into its sequence by
`mtmd_helper_eval_chunk_single`, between batching steps: embeddings and tokens cannot share a
`llama_batch`, so the other slots' streams wait for one image's decode, then go on together.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd

from claracore.errors import InvalidRequestError
from claracore.runtime import native

if TYPE_CHECKING:
    from claracore.runtime.jobs import Slot
    from claracore.runtime.native import NativeModel

log = logging.getLogger(__name__)

#: What a media part becomes in the rendered prompt, for `Projector.tokenize` to find.
MARKER = mtmd.mtmd_default_marker().decode()

_CHUNK_TEXT = 0  # mtmd_input_chunk_type: text, image, audio
_CHUNK_IMAGE = 1


@dataclass(frozen=True)
class Span:
    """One media run of a prompt: where it starts, how many positions it takes, its chunk."""

    start: int
    length: int
    chunk: Any  # mtmd_input_chunk pointer, owned by the MediaPrompt's chunk list
    kind: str  # "image" or "audio"


class MediaPrompt:
    """A tokenized prompt's media runs; keeps the native chunks alive until it is collected."""

    def __init__(self, chunks: Any, spans: list[Span]) -> None:
        self.spans = spans
        self._starts: list[int] = []
        self.index()
        self._free = weakref.finalize(self, mtmd.mtmd_input_chunks_free, chunks)

    def index(self) -> None:
        """Call after adding spans."""
        self._starts = [s.start for s in self.spans]

    def span_at(self, pos: int) -> Span | None:
        """The run holding prompt position `pos`, if any."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < self.spans[i].start + self.spans[i].length:
            return self.spans[i]
        return None

    def text_until(self, pos: int, end: int) -> int:
        """How many positions from `pos` (a text position) are text before the next run or `end`."""
        i = bisect.bisect_left(self._starts, pos)
        return (min(end, self._starts[i]) if i < len(self._starts) else end) - pos


def _placeholder(chunk: Any) -> int:
    raw = mtmd.mtmd_input_chunk_get_id(chunk) or b""
    digest = raw.decode(errors="replace")
    try:
        value = int(digest[:15], 16)
    except ValueError:
        value = hash(digest) & ((1 << 60) - 1)
    return -1 - value


class Projector:
    """One model's `mmproj`, loaded beside it. Tokenizing is thread-safe; decoding is the worker's."""

    def __init__(self, path: str, model: NativeModel, *, n_threads: int, use_gpu: bool) -> None:
        # libmtmd logs through its own hooks: route them where llama.cpp's log goes
        mtmd.mtmd_log_set(native._on_log, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(native._on_log, ctypes.c_void_p(0))
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.warmup = False
        self.path = path
        self._ctx = mtmd.mtmd_init_from_file(path.encode(), model.model, params)
        if not self._ctx:
            raise ValueError(f"the projector {path} does not load with this model (see the log for why)")
        self.vision = bool(mtmd.mtmd_support_vision(self._ctx))
        self.audio = bool(mtmd.mtmd_support_audio(self._ctx))

    @property
    def inputs(self) -> list[str]:
        """What a chat message may hold besides text."""
        return [kind for kind, ok in (("image", self.vision), ("audio", self.audio)) if ok]

    def tokenize(self, text: str, media: list[tuple[str, bytes, str]]) -> tuple[list[int], MediaPrompt]:
        """Tokens of `text`, whose MARKERs stand for `media` in order: (kind, bytes, field name)."""
        bitmaps = []
        try:
            for kind, data, field in media:
                buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buf, len(data), False)
                if bitmap:
                    bitmaps.append(bitmap)
                # libmtmd tells audio from images by the bytes, not by the part that brought them:
                # a PNG sent as input_audio must not reach the model as an image, nor a WAV as one
                if not bitmap or bool(mtmd.mtmd_bitmap_is_audio(bitmap)) != (kind == "audio"):
                    what = "an image" if kind == "image" else "audio"
                    raise InvalidRequestError(f"{field} is not {what} this server can read", param=field)
            return self._tokenize(text, bitmaps, media)
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _tokenize(
        self, text: str, bitmaps: list[Any], media: list[tuple[str, bytes, str]]
    ) -> tuple[list[int], MediaPrompt]:
        raw = text.encode()
        inp = mtmd.mtmd_input_text()
        inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), True, True
        array = (ctypes.c_void_p * max(1, len(bitmaps)))(*bitmaps)
        chunks = mtmd.mtmd_input_chunks_init()
        prompt = MediaPrompt(chunks, [])
        rc = mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(inp), array, len(bitmaps))
        if rc != 0:
            field = media[0][2] if media else "messages"
            raise InvalidRequestError(
                f"the prompt and its media do not match this model's projector (mtmd_tokenize: {rc})",
                param=field,
            )
        tokens: list[int] = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind = mtmd.mtmd_input_chunk_get_type(chunk)
            if kind == _CHUNK_TEXT:
                n = ctypes.c_size_t(0)
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens.extend(ids[: n.value])
                continue
            length = mtmd.mtmd_input_chunk_get_n_pos(chunk)
            prompt.spans.append(
                Span(len(tokens), length, chunk, "image" if kind == _CHUNK_IMAGE else "audio")
            )
            tokens.extend([_placeholder(chunk)] * length)
        prompt.index()
        if prompt.spans and prompt.spans[-1].start + prompt.spans[-1].length == len(tokens):
            raise InvalidRequestError(
                "the prompt ends with media: there is no text to answer after", param="messages"
            )
        return tokens, prompt

    def decode(self, lctx: Any, span: Span, seq: int, n_batch: int) -> None:
        """Encode `span`'s media and decode its embeddings into sequence `seq` at its start."""
        new_past = llama_cpp.llama_pos(0)
        rc = mtmd.mtmd_helper_eval_chunk_single(
            self._ctx, lctx, span.chunk, span.start, seq, n_batch, False, ctypes.byref(new_past)
        )
        if rc != 0:
            raise RuntimeError(f"decoding the {span.kind} failed (mtmd status {rc})")

    def close(self) -> None:
        if self._ctx:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None


class Multimodal:
    """The media half of `LlmRuntime` (a mixin sharing the worker's context and slots)."""

    projector: Projector | None = None
    n_batch: int
    tokens_decoded: int
    prompt_tokens_decoded: int
    _ctx: Any

    def _init_media(self, mmproj: str | None, model: NativeModel, n_threads: int, use_gpu: bool) -> None:
        self.projector = Projector(mmproj, model, n_threads=n_threads, use_gpu=use_gpu) if mmproj else None

    def _close_media(self) -> None:
        if self.projector is not None:
            self.projector.close()

    def _decode_media_heads(self, slots: list[Slot]) -> list[tuple[Slot, BaseException]]:
        """Decode the media that starts each slot's pending prompt; returns the slots that failed."""
        failed: list[tuple[Slot, BaseException]] = []
        for slot in slots:
            job = slot.job
            if job is None or not slot.pending or slot.pending[0] >= 0 or job.media is None:
                continue
            pos = len(job.prompt) - len(slot.pending)
            span = job.media.span_at(pos)
            assert span is not None and self.projector is not None
            if pos != span.start:  # a reused prefix ended inside this media: decode it whole again
                llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self._ctx), slot.seq, span.start, -1)
                del slot.tokens[span.start :]
                slot.pending = job.prompt[span.start :]
            try:
                self.projector.decode(self._ctx, span, slot.seq, self.n_batch)
            except RuntimeError as exc:
                failed.append((slot, exc))
                continue
            slot.tokens.extend(slot.pending[: span.length])
            del slot.pending[: span.length]
            self.tokens_decoded += span.length
            self.prompt_tokens_decoded += span.length  # prompt positions, as text tokens count
        return failed

    @staticmethod
    def _text_run(slot: Slot, limit: int) -> int:
        """How much of `slot`'s pending prompt (at most `limit`) is text before its next media."""
        job = slot.job
        if job is None or job.media is None:
            return limit
        pos = len(job.prompt) - len(slot.pending)
        return min(limit, job.media.text_until(pos, len(job.prompt)))
