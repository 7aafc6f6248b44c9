"""Python logging onto the event bus: one `logging.Handler` for ClaraCore's lines and llama.cpp's.

llama.cpp's log callback already lands in `logging` (the `claracore.llama` logger, see
`runtime.native`), so one handler on the root logger carries both, each with its source and
level. Which lines arrive is the loggers' business (`--log-level`; llama.cpp's chatter only when
debugging), so the bus never sees more than the terminal would.

Publishing a line must never publish another: a bus observer that fails, or a subscriber that logs
while handling a log event, would otherwise recurse, so a thread already inside `emit` drops the
nested line from the bus (it still reaches the other handlers).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from claracore.events import EventBus
from claracore.monitor.records import iso_time
from claracore.protocol.events import LogEvent

#: Logger name prefix -> the source a line is shown under; otherwise its top-level name.
_SOURCES = (("claracore.llama", "llama.cpp"), ("claracore", "claracore"))


def source_of(logger: str) -> str:
    for prefix, source in _SOURCES:
        if logger == prefix or logger.startswith(prefix + "."):
            return source
    return logger.split(".", 1)[0]


def log_event(record: logging.LogRecord) -> LogEvent:
    message = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None:
        message += "\n" + logging.Formatter().formatException(record.exc_info)
    return {
        "time": iso_time(record.created),
        "level": record.levelname.lower(),
        "source": source_of(record.name),
        "logger": record.name,
        "message": message,
    }


class BusLogHandler(logging.Handler):
    """Publishes each record as a "log" event and keeps the last `keep` for a new subscriber."""

    def __init__(self, bus: EventBus, *, keep: int = 200) -> None:
        super().__init__()
        self._bus = bus
        self._recent: deque[LogEvent] = deque(maxlen=keep)
        self._inside = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._inside, "active", False):
            return
        self._inside.active = True
        try:
            event = log_event(record)
            self._recent.append(event)
            self._bus.publish("log", dict(event))
        except Exception:
            self.handleError(record)
        finally:
            self._inside.active = False

    def recent(self, n: int | None = None) -> list[LogEvent]:
        """The last `n` lines (all kept when None), oldest first: the snapshot's log tail."""
        lines = list(self._recent)
        return lines if n is None else lines[-n:]

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
