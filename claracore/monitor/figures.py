"""Per-model figures for `GET /api/metrics`: counts since start, speeds over the recent requests.

Counts (requests, errors, tokens, loads, evictions) run from the start of the process. Speeds and
time-to-first-token percentiles are over the last `RECENT` requests, so they say how the model
is doing now rather than averaging in yesterday.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: How many recent requests the speeds and percentiles are computed over, per model.
RECENT = 200


@dataclass(frozen=True)
class _Sample:
    ttft: float | None
    prefill_tokens: int  # prompt tokens decoded (not taken from the cache)
    prefill_seconds: float  # start to the first token
    gen_tokens: int  # tokens after the first
    gen_seconds: float  # first token to the end


@dataclass
class ModelFigures:
    """One model's counters and its recent requests."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    loads: int = 0
    load_failures: int = 0
    load_seconds: float | None = None  # the last load's
    evictions: int = 0
    last_used: float | None = None  # Unix time of the last request's start
    recent: deque[_Sample] = field(default_factory=lambda: deque(maxlen=RECENT))

    def view(self) -> dict[str, Any]:
        samples = list(self.recent)
        ttfts = sorted(s.ttft for s in samples if s.ttft is not None)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "cachedTokens": self.cached_tokens,
            "promptTokensPerSecond": _rate(samples, "prefill"),
            "generationTokensPerSecond": _rate(samples, "gen"),
            "ttft": {"p50": percentile(ttfts, 50), "p95": percentile(ttfts, 95)},
            "loads": self.loads,
            "loadFailures": self.load_failures,
            "loadSeconds": self.load_seconds,
            "evictions": self.evictions,
            "lastUsed": self.last_used,
        }


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 4)


def _rate(samples: list[_Sample], which: str) -> float | None:
    tokens = sum(getattr(s, f"{which}_tokens") for s in samples)
    seconds = sum(getattr(s, f"{which}_seconds") for s in samples if getattr(s, f"{which}_tokens"))
    return round(tokens / seconds, 2) if tokens and seconds > 0 else None


class Figures:
    """Every model's figures, updated from events in any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelFigures] = {}

    def _of(self, name: str) -> ModelFigures:
        figures = self._models.get(name)
        if figures is None:
            figures = self._models[name] = ModelFigures()
        return figures

    def request(self, model: str, data: dict[str, Any], started: float) -> None:
        """Count one finished request (a "request" event's data) against a configured model."""
        ttft, duration = data.get("ttft"), float(data.get("duration") or 0.0)
        completion = int(data.get("completionTokens") or 0)
        prompt, cached = int(data.get("promptTokens") or 0), int(data.get("cachedTokens") or 0)
        ok = data.get("errorCode") is None and (data.get("status") or 200) < 400
        sample = _Sample(
            ttft=ttft,
            prefill_tokens=max(prompt - cached, 0) if ttft is not None else 0,
            prefill_seconds=ttft or 0.0,
            gen_tokens=max(completion - 1, 0) if ttft is not None else 0,
            gen_seconds=max(duration - (ttft or 0.0), 0.0),
        )
        with self._lock:
            f = self._of(model)
            f.requests += 1
            f.errors += 0 if ok else 1
            f.prompt_tokens += prompt
            f.completion_tokens += completion
            f.cached_tokens += cached
            f.last_used = started
            if ttft is not None:  # it produced tokens (maybe then failed or was cancelled): it timed them
                f.recent.append(sample)

    def loaded(self, model: str, seconds: float | None) -> None:
        with self._lock:
            f = self._of(model)
            f.loads += 1
            f.load_seconds = seconds

    def load_failed(self, model: str) -> None:
        with self._lock:
            self._of(model).load_failures += 1

    def evicted(self, model: str) -> None:
        with self._lock:
            self._of(model).evictions += 1

    def view(self, model: str) -> dict[str, Any]:
        with self._lock:
            return self._of(model).view()
