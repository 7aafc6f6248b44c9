"""Query parameters of the monitoring routes: `/api/events`, `/api/activity`, `/api/logs`.

Every one is bounded and named in its 400, like a body field: a page size of a million or a level
that does not exist is the client's mistake to hear about, not a slow query or an empty answer.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Level = Literal["debug", "info", "warning", "error", "critical"]
_STATUS = re.compile(r"^(ok|error|[1-5]\d\d)$")


def parse_since(value: object) -> float | None:
    """Unix seconds, or an ISO 8601 time (`2025-01-01T12:00:00Z`; no zone means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("expected Unix seconds or an ISO 8601 time such as 2025-01-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class EventsQuery(BaseModel):
    """GET /api/events: `types` (comma-separated, or repeated) limits the stream to those types."""

    types: list[str] = Field(default_factory=list, max_length=20)

    def wanted(self) -> frozenset[str] | None:
        """The types asked for (None: all); unknown names are the bus's to refuse."""
        names = {t.strip() for value in self.types for t in value.split(",") if t.strip()}
        return frozenset(names) if names else None


class ActivityQuery(BaseModel):
    """GET /api/activity: newest first, a page at a time; a page past the end is empty."""

    page: int = Field(default=1, ge=1, le=1_000_000)
    pageSize: int = Field(default=50, ge=1, le=1000)
    model: str | None = Field(default=None, max_length=500)
    route: str | None = Field(default=None, max_length=500)
    status: str | None = Field(default=None, description="ok, error, or an HTTP status such as 404")
    since: float | None = Field(default=None, description="Unix seconds or ISO 8601")

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value is not None and not _STATUS.match(value):
            raise ValueError("expected ok, error, or an HTTP status such as 404")
        return value

    @field_validator("since", mode="before")
    @classmethod
    def _since(cls, value: object) -> float | None:
        return parse_since(value)


class LogsQuery(BaseModel):
    """GET /api/logs: the newest `limit` lines at or above `level`, oldest first; `follow` streams on."""

    level: Level | None = None
    source: str | None = Field(
        default=None, max_length=200, description="comma-separated: claracore,llama.cpp"
    )
    q: str | None = Field(default=None, max_length=200, description="text the message contains (any case)")
    since: float | None = Field(default=None, description="Unix seconds or ISO 8601")
    limit: int = Field(default=200, ge=0, le=10_000)
    follow: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("since", mode="before")
    @classmethod
    def _since(cls, value: object) -> float | None:
        return parse_since(value)

    def sources(self) -> list[str]:
        return [s.strip() for s in (self.source or "").split(",") if s.strip()]
