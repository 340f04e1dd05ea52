"""Logging: one JSON object per line on stdout, library logs included.

structlog renders the agent's events; the standard library's records (the
OpenTelemetry SDK, grpc) pass through the same renderer with their messages
formatted. A record that repeats within ``REPEAT_WINDOW_S`` is dropped and
counted, and the next one that passes carries the count, so that an outage
logs a line per window, not per cycle.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import structlog
from structlog.typing import EventDict

REPEAT_WINDOW_S = 600.0

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class RepeatFilter(logging.Filter):
    """Pass the first of identical library records in each window and count the rest."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self._window_s = window_s
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("otel_collector"):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            first_seen, suppressed = self._seen.get(key, (0.0, 0))
            if now - first_seen < self._window_s:
                self._seen[key] = (first_seen, suppressed + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 1000:  # bound the memory of distinct messages
                self._seen = {key: (now, 0)}
        if suppressed:
            record.repeated = suppressed
        return True


def _add_repeat_count(_logger: Any, _name: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if record is not None and getattr(record, "repeated", None):
        event["repeated"] = record.repeated
    return event


def _rename_library_event(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """Give stdlib records a stable event name and keep their text as ``message``."""
    record = event.get("_record")
    if record is not None and not record.name.startswith("otel_collector"):
        event["message"] = event.pop("event")
        event["event"] = "library_log"
    return event


def configure(level: str = "info", log_format: str = "auto") -> None:
    """Route structlog and the standard library to one renderer on stdout."""
    console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=())],
        processors=[
            _rename_library_event,
            _add_repeat_count,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.dict_tracebacks if not console else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # grpc's Python logger is chatty at debug about channel state.
    logging.getLogger("grpc").setLevel(max(_LEVELS[level], logging.INFO))


def _identity(_logger: Any, _name: str, event: EventDict) -> EventDict:
    return event
