"""Logging: one JSON object per line on stdout, library logs included.

structlog renders the agent's events; the standard library's records (the
OpenTelemetry SDK, grpc) pass through the same renderer with their messages
formatted. A record that repeats within ``REPEAT_WINDOW_S`` is dropped and
counted, and the next one that passes carries the count, so that an outage
logs a line per window, not per cycle. Records repeat when their messages
are equal once numbers are masked: the SDK's retry warning names a new
backoff each time, but a different status code is a different message.

Secret values (the OTLP header values) are replaced in every line, whatever
logged them: a gateway may echo an API key in its error details, which the
SDK then logs. Tracebacks carry no local variables, which could hold them.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict

REPEAT_WINDOW_S = 600.0

# structlog's dict_tracebacks shows each frame's local variables, and the
# OTLP exporter's frames hold the request headers.
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False)
)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}

_NUMBER = re.compile(r"\d+(?:\.\d+)?")

REDACTED = "<redacted>"
# Shorter values are not replaced: they would mask common words and numbers,
# and a value that short protects nothing.
MIN_SECRET_LENGTH = 4

# The OTLP exporter module of the SDK, whose logger has a filter of its own.
_SDK_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"


def repeat_key(record: logging.LogRecord) -> tuple[str, int, str]:
    """Identify a library record by logger, level and message with its numbers masked."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit the format
        message = str(record.msg)
    return record.name, record.levelno, _NUMBER.sub("#", message)


class RepeatFilter(logging.Filter):
    """Pass the first of identical library records in each window and count the rest."""

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        # time.monotonic counts from boot on Linux, so it can be below the window.
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("otel_collector"):
            return True
        key = repeat_key(record)
        now = self._clock()
        suppressed = 0
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                first_seen, suppressed = seen
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


class SecretScrubber:
    """Replace secret values in every string of an event, nested ones included."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted(
            {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH},
            key=len, reverse=True,
        )

    def __call__(self, _logger: Any, _name: str, event: EventDict) -> EventDict:
        if not self._secrets:
            return event
        scrubbed: EventDict = self._scrub(event)
        return scrubbed

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {self._scrub(key): self._scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(item) for item in value)
        return value


def _rename_library_event(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """Give stdlib records a stable event name and keep their text as ``message``."""
    record = event.get("_record")
    if record is not None and not record.name.startswith("otel_collector"):
        event["message"] = event.pop("event")
        event["event"] = "library_log"
    return event


def configure(level: str = "info", log_format: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Route structlog and the standard library to one renderer on stdout.

    Every occurrence of a value in ``secrets`` is replaced in every line.
    """
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
            _DICT_TRACEBACKS if not console else _identity,
            SecretScrubber(secrets),
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
    _drop_sdk_duplicate_filter()
    sys.excepthook = _log_unhandled_exception
    threading.excepthook = _log_thread_exception


def _log_unhandled_exception(
    exc_type: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """Log an exception that ends the program as one JSON line, in place of a bare traceback."""
    structlog.get_logger("otel_collector").critical(
        "unhandled_exception", exc_info=(exc_type, error, traceback)
    )


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """Log an exception that ends a thread as one JSON line, in place of a bare traceback."""
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    structlog.get_logger("otel_collector").error(
        "thread_failed",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _drop_sdk_duplicate_filter() -> None:
    """Remove the DuplicateFilter that the SDK (1.45) puts on its OTLP exporter's logger.

    That filter drops a record whose format string equals the previous
    record's within the same 20 s, so after an UNAVAILABLE failure it hides
    an INVALID_ARGUMENT failure, which has the same format string.
    RepeatFilter covers repeats by the formatted message instead.
    """
    import importlib

    importlib.import_module(_SDK_EXPORTER_LOGGER)
    sdk_logger = logging.getLogger(_SDK_EXPORTER_LOGGER)
    for existing in list(sdk_logger.filters):
        if type(existing).__name__ == "DuplicateFilter":
            sdk_logger.removeFilter(existing)


def _identity(_logger: Any, _name: str, event: EventDict) -> EventDict:
    return event
