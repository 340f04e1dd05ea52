"""What every scraper shares: points, the per-cycle reading, and error handling.

A scraper reads each of its sources once per collection cycle, shapes the
readings into points with pure functions, and returns them keyed by metric
name. The observable callbacks only hand those points to the SDK.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import structlog

from otel_collector.config import Config
from otel_collector.hostfs import HostRoot

AttributeValue = str | int
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Point:
    """One observation: a value and its attributes."""

    value: int | float
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


Reading = dict[str, list[Point]]


class ErrorLog:
    """Logs each distinct error once, then counts its repeats.

    A key is logged the first time it fails and again, with the number of
    repeats, once it recovers, so a fault that lasts hours costs two lines.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], int] = {}
        self._errors_by_scraper: dict[str, int] = {}

    def failed(self, scraper: str, key: str, event: str, **fields: Any) -> None:
        with self._lock:
            self._errors_by_scraper[scraper] = self._errors_by_scraper.get(scraper, 0) + 1
            repeats = self._active.get((scraper, key))
            self._active[(scraper, key)] = (repeats or 0) + 1
        if repeats is None:
            structlog.get_logger("otel_collector.scrapers").warning(
                event, scraper=scraper, source=key, **fields
            )

    def succeeded(self, scraper: str, key: str) -> None:
        if (scraper, key) not in self._active:
            return
        with self._lock:
            failures = self._active.pop((scraper, key), None)
        if failures is not None:
            structlog.get_logger("otel_collector.scrapers").info(
                "scraper_source_recovered", scraper=scraper, source=key, failures=failures
            )

    def errors_by_scraper(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors_by_scraper)


def read_small_file(path: str) -> bytes:
    """Read a /proc file of at most 4 KiB with two system calls and no Python file object.

    Reading the stat file of 111 processes took 1.5 ms of CPU this way and
    3.2 ms with open().read() (one measurement on a 2-CPU VM, CPython 3.11).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def read_proc_file(path: str) -> bytes:
    """Read a /proc file of any size, such as /proc/net/netstat, which grows with the kernel.

    A read may return less than requested before the end, so the loop reads
    until the kernel returns nothing.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass
class ScraperContext:
    """The agent's parts a scraper uses: settings, the host, and the error log."""

    config: Config
    host: HostRoot
    enabled: frozenset[str]
    errors: ErrorLog


class Scraper(abc.ABC):
    """Base class of the scrapers; subclasses set ``name`` and implement ``scrape``."""

    name: ClassVar[str]

    def __init__(self, context: ScraperContext) -> None:
        self.context = context
        self.config = context.config
        self.host = context.host

    def wants(self, metric: str) -> bool:
        return metric in self.context.enabled

    def wants_any(self, metrics: Iterable[str]) -> bool:
        return any(metric in self.context.enabled for metric in metrics)

    def read(self, source: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Call one source reader; on failure log once, count it, and return None.

        Any exception is caught: a source that fails costs only the metrics
        built from it, and the scraper's other metrics still go out.
        """
        try:
            value = function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - see the docstring
            self.context.errors.failed(
                self.name, source, "scraper_source_failed",
                error=f"{type(error).__name__}: {error}",
            )
            return None
        self.context.errors.succeeded(self.name, source)
        return value

    def partial_failure(self, source: str, event: str, **fields: Any) -> None:
        """Count and log once a failure of one item (a mount, a device)."""
        self.context.errors.failed(self.name, source, event, **fields)

    def recovered(self, source: str) -> None:
        self.context.errors.succeeded(self.name, source)

    @abc.abstractmethod
    def scrape(self) -> Reading:
        """Read the sources once and return this cycle's points by metric name."""

    def close(self) -> None:  # noqa: B027 - most scrapers hold nothing to release
        """Release what the scraper holds (threads, files)."""


_MAX_VERDICTS = 4096


@dataclass(frozen=True)
class NameFilter:
    """Include and exclude lists of regular expressions matched against whole names.

    A name is admitted when it matches the include list (or that list is
    empty) and matches nothing in the exclude list.
    """

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    # Verdicts by name: the same mounts, devices and interfaces come back every
    # cycle, and the default file system type list alone has 27 patterns.
    _verdicts: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def admits(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = self._match(name)
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()  # names that churn (container mounts) stay bounded
            self._verdicts[name] = verdict
        return verdict

    def _match(self, name: str) -> bool:
        if self.include and not any(p.fullmatch(name) for p in self.include):
            return False
        return not any(p.fullmatch(name) for p in self.exclude)


def keep(reading: Reading, enabled: AbstractSet[str]) -> Reading:
    """Drop the metrics that are switched off."""
    return {name: points for name, points in reading.items() if name in enabled}
