"""The LLM runtime: one worker thread per model running continuous batching over `parallel` slots.

llama.cpp contexts are not thread-safe, so one thread owns the context. Between decode steps it
admits queued jobs into free slots, then decodes every active sequence together in one
`llama_batch`: one token for each generating sequence plus a chunk of prompt for newcomers
(at most `n_batch` tokens), so running streams keep flowing while a long prompt is read.
ctypes releases the GIL around `llama_decode`, so the asyncio loop stays responsive.

Slots remember what their KV cache holds, and a host-memory prompt cache keeps what slots held
before other jobs took them (placement.py, prompt_cache.py): a new job starts from the longest
prefix of its prompt found in any slot or cache entry and decodes only the rest, so a multi-turn
chat re-reads only the new turn even when it comes back to a different slot. The KV cache is
unified (one buffer of `n_ctx * parallel` cells shared by all sequences), so `n > 1` choices copy
the prompt's KV to their sibling slots for free instead of decoding it again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import llama_cpp

from claracore.errors import (
    ClaraCoreError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelUnavailableError,
)
from claracore.inputs import check_token_ids
from claracore.runtime.base import Occupancy, PromptCacheStats
from claracore.runtime.chat_template import ChatTemplate
from claracore.runtime.jobs import (
    Delta,
    Failed,
    Finished,
    Job,
    PromptLogprobs,
    Slot,
    scan_stops,
)
from claracore.runtime.llm_context import LlmOptions, context_params, outputs_per_step
from claracore.runtime.lora import Adapters
from claracore.runtime.multimodal import Multimodal
from claracore.runtime.native import NativeModel, ensure_backend, new_context
from claracore.runtime.placement import COPY_PER_STEP, Placer
from claracore.runtime.prompt_cache import PromptCache
from claracore.runtime.rpc_loss import WorkerUnavailableError, watch
from claracore.runtime.sampling import TokenLogprob, build_chain, free_chain, token_logprob
from claracore.runtime.speculative import Speculating
from claracore.runtime.vocab import TokenText

log = logging.getLogger(__name__)

__all__ = ["LlmOptions", "LlmRuntime"]


class LlmRuntime(TokenText, Speculating, Multimodal, Adapters):
    """A loaded LLM with its worker thread. Construct in a worker thread: loading blocks."""

    kind = "llm"

    def __init__(self, options: LlmOptions, *, name: str = "") -> None:
        ensure_backend()
        self.options = options
        self.name = name or os.path.basename(options.path)
        self._model = NativeModel.load(
            options.path, gpu_layers=options.gpu_layers, use_mmap=options.use_mmap, rpc=options.rpc
        )
        try:
            threads = options.n_threads or os.cpu_count() or 1
            self._init_media(options.mmproj, self._model, threads, options.gpu_layers != 0)
            self._init_lora(options.lora, self._model)
            self._init_context()
            self._init_speculation(options, self._model, self.parallel)
        except BaseException:
            if getattr(self, "_ctx", None) is not None:
                llama_cpp.llama_batch_free(self._batch)
                llama_cpp.llama_free(self._ctx)
            self._close_media()
            self._model.close()
            raise
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._lost: ClaraCoreError | None = None  # why it was written off: a worker lost mid-request
        self._on_failure: Callable[[ClaraCoreError], None] | None = None
        self._unwatch = watch(options.rpc, self._workers_lost) if options.rpc else None
        self._thread = threading.Thread(target=self._run, name=f"llm:{self.name}", daemon=True)
        self._thread.start()

    def _init_context(self) -> None:
        o = self.options
        model, vocab = self._model.model, self._model.vocab
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        self.n_ctx = max(16, o.n_ctx)
        self.parallel = max(1, o.parallel)
        self._ctx: Any = new_context(self._model, context_params(o, self.n_ctx, self.parallel))
        self.n_batch = o.n_batch
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.parallel)
        self._slots = [Slot(i) for i in range(self.parallel)]
        self.n_outputs = outputs_per_step(o, self.parallel)
        self._placer = Placer(self._ctx, self._slots, PromptCache(o.prompt_cache_bytes))
        self.prompt_tokens_decoded = 0  # prompt positions decoded, media too: what caches save shows here
        self.tokens_decoded = 0  # every token through llama_decode: what prefix reuse and cancels save
        self._init_text(vocab)
        bos_text = self.spelled(self.bos) if self.bos >= 0 else ""
        eos = llama_cpp.llama_vocab_eos(vocab)
        eos_text = self.spelled(eos) if eos >= 0 else ""
        source = o.chat_template
        if source is None:
            raw = llama_cpp.llama_model_chat_template(model, None)
            source = raw.decode("utf-8", errors="replace") if raw else None
        self.template = ChatTemplate(source, bos_token=bos_text, eos_token=eos_text)

    # ------------------------------------------------------------ submitting work (any thread)

    def submit(self, job: Job) -> None:
        """Queue a job. Validates it and builds its samplers first, raising in the caller's thread."""
        if not job.prompt:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if len(job.prompt) >= self.n_ctx:
            raise ContextLengthExceededError(
                f"the prompt is {len(job.prompt)} tokens; this model's context is {self.n_ctx} tokens "
                "(prompt plus completion)",
                param="messages",
                details={"prompt_tokens": len(job.prompt), "context_length": self.n_ctx},
            )
        if job.n > self.parallel:
            raise InvalidRequestError(
                f"n is {job.n}; this model decodes at most {self.parallel} sequences together", param="n"
            )
        # a prompt with images holds their placeholder runs (negative ids; claracore.runtime.multimodal)
        check_token_ids(
            [t for t in job.prompt if t >= 0] if job.media is not None else job.prompt, self.n_vocab
        )
        job.max_tokens = min(job.max_tokens, self.n_ctx - len(job.prompt))
        try:
            for params in job.params:
                job.chains.append(build_chain(params, self.vocab, self.n_vocab, job.prompt))
        except BaseException:
            for chain in job.chains:
                free_chain(chain)
            raise
        job.remaining = job.n
        with self._cv:
            if self._closing:
                for chain in job.chains:
                    free_chain(chain)
                raise self._lost or ModelUnavailableError(f"model '{self.name}' is unloading")
            self._queue.append(job)
            self._cv.notify()

    def cancel(self, job: Job) -> None:
        """Ask the worker to drop `job`; its slots are freed at the next step."""
        job.cancelled = True
        with self._cv:
            self._cv.notify()

    @property
    def active(self) -> int:
        return sum(1 for s in self._slots if s.job is not None) + len(self._queue)

    def prompt_cache_stats(self) -> PromptCacheStats:
        return self._placer.cache.stats()

    def set_prompt_cache_limit(self, nbytes: int) -> None:
        """The pool grants (or takes back) host memory for the prompt cache; any thread."""
        self._placer.cache.set_limit(nbytes)

    def occupancy(self) -> Occupancy:
        """Slots, those decoding, jobs queued: read without the lock (a metrics snapshot)."""
        return Occupancy(len(self._slots), sum(1 for s in self._slots if s.job is not None), len(self._queue))

    def on_failure(self, listener: Callable[[ClaraCoreError], None]) -> None:
        """`listener(why)` hears, once and from ggml-rpc's thread, that a worker was lost."""
        self._on_failure = listener

    def close(self) -> None:
        """Stop the worker, fail what is queued or running, and free all native memory."""
        if self._unwatch is not None:
            self._unwatch()
        with self._cv:
            if self._lost is not None:  # the worker thread is blocked in llama.cpp for good
                log.warning("%s: written off (its RPC worker was lost); memory held until exit", self.name)
                return
            if self._closing:
                return
            self._closing = True
            self._cv.notify()
        self._thread.join()
        self._placer.cache.clear()
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        self._ctx = None
        self._close_speculation()
        self._close_media()
        self._model.close()

    def _workers_lost(self, gone: list[str]) -> None:
        """ggml-rpc's thread: a worker of this model is gone, and the worker thread is (or soon
        will be) blocked on it for good (runtime/rpc_loss.py). Fail every job, queued or running, with a
        503 naming the worker, and write the runtime off. The slots stay as they are: the worker
        thread owns them and may still be between steps."""
        lost = WorkerUnavailableError(next(e for e in gone if e in self.options.rpc), "lost mid-request")
        with self._cv:
            if self._lost is not None:
                return
            self._lost, self._closing = lost, True
            jobs = [*self._queue, *{id(s.job): s.job for s in self._slots if s.job is not None}.values()]
            self._queue.clear()
            self._cv.notify()
        for job in jobs:
            job.emit(Failed(lost))
        if self._on_failure is not None:
            self._on_failure(lost)

    # ------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._closing and not self._queue and not self._busy():
                        self._cv.wait()
                    if self._closing:
                        break
                self._drop_cancelled()
                self._admit()
                self._step()
        except BaseException as exc:  # a bug or a native failure: fail everyone, never hang them
            log.exception("worker of %s stopped", self.name)
            self._fail_all(exc)
            with self._cv:
                self._closing = True
            return
        self._fail_all(ModelUnavailableError(f"model '{self.name}' was unloaded"))

    def _busy(self) -> bool:
        return any(s.job is not None for s in self._slots)

    def _fail_all(self, exc: BaseException) -> None:
        with self._cv:
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            for chain in job.chains:
                free_chain(chain)
            job.emit(Failed(exc))
        self._fail_jobs({id(s.job): s.job for s in self._slots if s.job is not None}.values(), exc)

    def _fail_jobs(self, jobs: Iterable[Job], exc: BaseException, *, forget: bool = False) -> None:
        """Release every slot of `jobs` and tell their callers why."""
        failed = list(jobs)
        for slot in self._slots:
            if slot.job is not None and any(slot.job is j for j in failed):
                self._release(slot, forget=forget)
        for job in failed:
            job.emit(Failed(exc))

    def _drop_cancelled(self) -> None:
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                self._release(slot)
        with self._cv:
            for job in [j for j in self._queue if j.cancelled]:
                self._queue.remove(job)
                for chain in job.chains:
                    free_chain(chain)

    def _admit(self) -> None:
        """Move queued jobs into free slots, FIFO, reusing the longest cached prefix.

        Copying states to or from the prompt cache pauses every running stream, so while any
        runs, placing stops for this step once COPY_PER_STEP bytes have moved.
        """
        copied = 0
        while True:
            with self._cv:
                if not self._queue:
                    return
                job = self._queue[0]
                free = [s for s in self._slots if s.job is None]
                if len(free) < job.n or not self._lora_admits(job):
                    return
                self._queue.popleft()
            running = self._busy()
            try:
                copied += self._place(job, free)
                if running and copied >= COPY_PER_STEP:
                    return
            except BaseException as exc:  # the job is in no queue and maybe no slot: tell its caller
                owned = {id(s.chain) for s in self._slots if s.job is job}
                for chain in job.chains:
                    if id(chain) not in owned:
                        free_chain(chain)
                self._fail_jobs([job], exc, forget=True)
                raise

    def _place(self, job: Job, free: list[Slot]) -> int:
        """Give `job` its slots: the primary decodes the prompt, siblings copy it afterwards.
        Returns the bytes copied to or from the prompt cache."""
        group, moved = self._placer.place(job, free)
        for choice, slot in enumerate(group):
            slot.reset_output()
            slot.job, slot.choice, slot.chain = job, choice, job.chains[choice]
            slot.max_tokens = job.max_tokens
        group[0].siblings = group[1:]
        return moved

    def _step(self) -> None:
        for slot, exc in self._decode_media_heads(self._slots):  # images first, alone: see multimodal
            if slot.job is not None:
                self._fail_jobs([slot.job], exc, forget=True)
        batch = self._batch
        n = 0
        generating = [s for s in self._slots if s.job is not None and s.next_token >= 0]
        self._propose(generating)
        for k, slot in enumerate(generating):  # generating sequences first: one token each (+ drafts)
            self._put(n, slot.next_token, len(slot.tokens), slot.seq, True)
            slot.tokens.append(slot.next_token)
            slot.batch_idx = n
            n += 1
            if self.draft_max:  # after the next token, its draft (claracore.runtime.speculative)
                n = self._add_drafts(slot, n, self.n_batch - n - (len(generating) - k - 1))
        outputs = n  # logits rows: llama.cpp allows `n_outputs` per decode (n_outputs_max)
        prompting = [s for s in self._slots if s.job is not None and s.pending]
        chunked: list[Slot] = []  # prompts in this batch, finished or not: a failed decode fails them
        for k, slot in enumerate(prompting):  # then prompt chunks, as much as the batch holds
            if n >= self.n_batch:
                break
            assert slot.job is not None
            take = self._text_run(slot, min(len(slot.pending), self.n_batch - n))
            if take == 0:
                continue
            chunked.append(slot)
            scored = slot.job.prompt_logprobs
            if scored:  # every token is a row here; leave one for each prompt still to come
                take = min(take, self.n_outputs - outputs - (len(prompting) - k - 1))
                slot.lp_rows = (n, take)
                outputs += take
            pos = len(slot.tokens)
            for i in range(take):
                self._put(n + i, slot.pending[i], pos + i, slot.seq, scored)
            slot.tokens.extend(slot.pending[:take])
            del slot.pending[:take]
            n += take
            self.prompt_tokens_decoded += take
            if not slot.pending:
                batch.logits[n - 1] = 1
                slot.batch_idx = n - 1
                outputs += 0 if scored else 1
        if n == 0:
            return
        batch.n_tokens = n
        self.tokens_decoded += n
        rc = llama_cpp.llama_decode(self._ctx, batch)
        if rc != 0:
            self._decode_failed(rc, generating + chunked)
            return
        for slot in self._slots:
            if slot.job is not None and slot.lp_rows[1]:
                self._score_prompt(slot)  # before its first token is sampled and sent
            if slot.job is not None and slot.batch_idx >= 0:
                idx, slot.batch_idx = slot.batch_idx, -1
                for sibling in slot.siblings:
                    self._placer.copy_prompt(slot, sibling)
                    self._sample(sibling, idx)
                slot.siblings = []
                self._sample_drafted(slot, idx)

    def _score_prompt(self, slot: Slot) -> None:
        """Score the prompt tokens this step decoded; once the prompt is done, send the scores.

        Sent before sampling, so every choice hears about its prompt before its first token.
        """
        job = slot.job
        assert job is not None
        (first, count), slot.lp_rows = slot.lp_rows, (-1, 0)
        start = len(slot.tokens) - count  # the prompt position of the chunk's first token
        for j in range(count):
            following = start + j + 1
            if following < len(job.prompt):
                slot.prompt_lp.append(
                    token_logprob(self._ctx, first + j, self.n_vocab, job.prompt[following], job.top_logprobs)
                )
        if not slot.pending:
            scores = tuple(slot.prompt_lp)
            for choice in range(job.n):
                job.emit(PromptLogprobs(choice, job.prompt[0], scores))

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits

    def _decode_failed(self, rc: int, members: list[Slot]) -> None:
        """A failed decode drops the jobs in this batch; their KV state is unknown, so forget it.

        `members` are the slots that put tokens in it: a prompt read in chunks counts from its
        first chunk, not only once its last is in, since it would go on after positions that
        were never written."""
        jobs = {id(s.job): s.job for s in members if s.job is not None}
        self._forget_drafts()
        self._fail_jobs(jobs.values(), RuntimeError(f"llama_decode failed with status {rc}"), forget=True)

    def _sample(self, slot: Slot, idx: int) -> None:
        job = slot.job
        assert job is not None
        token = llama_cpp.llama_sampler_sample(slot.chain, self._ctx, idx)
        lp: tuple[TokenLogprob, ...] = ()
        if job.logprobs:
            lp = (token_logprob(self._ctx, idx, self.n_vocab, token, job.top_logprobs),)
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(slot, "stop", flush=True)
            return
        slot.n_gen += 1
        text = slot.held + slot.decoder.decode(self.piece(token))
        stop_at, hold = scan_stops(text, job.stop)
        if stop_at >= 0:
            job.emit(Delta(slot.choice, text[:stop_at], lp))
            self._finish(slot, "stop", flush=False)
            return
        slot.held = text[len(text) - hold :] if hold else ""
        emitted = text[: len(text) - hold]
        if emitted or lp:
            job.emit(Delta(slot.choice, emitted, lp))
        if slot.n_gen >= slot.max_tokens or len(slot.tokens) + 1 >= self.n_ctx:
            self._finish(slot, "length", flush=True)
            return
        slot.next_token = token

    def _finish(self, slot: Slot, reason: str, *, flush: bool) -> None:
        """End one choice. `flush` releases text held back for stop strings that never matched."""
        job = slot.job
        assert job is not None
        if flush:
            tail = slot.held + slot.decoder.decode(b"", final=True)
            if tail:
                job.emit(Delta(slot.choice, tail))
        done = Finished(
            slot.choice, reason, slot.n_gen, len(job.prompt), slot.cached, *self._draft_counts(slot)
        )
        self._release(slot)  # before telling the caller, so a finished request never holds a slot
        job.emit(done)

    def _release(self, slot: Slot, *, forget: bool = False) -> None:
        """Free the slot for the next job; its KV stays cached for prefix reuse unless `forget`."""
        job = slot.job
        if job is not None:
            job.remaining -= 1
        free_chain(slot.chain)
        slot.chain = None
        slot.job = None
        slot.pending = []
        slot.reset_output()
        self._placer.release(slot)
        if forget:
            self._placer.drop(slot)
