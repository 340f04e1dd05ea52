"""The agent's own figures: scraper durations and export outcomes."""

from __future__ import annotations

import threading
from collections import Counter


class AgentStats:
    """Thread-safe store the collection loop and the exporter write to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._durations: dict[str, float] = {}
        self._requests: Counter[str] = Counter()
        self._data_points: Counter[str] = Counter()

    def scraper_took(self, scraper: str, seconds: float) -> None:
        with self._lock:
            self._durations[scraper] = seconds

    def exported(self, success: bool, data_points: int) -> None:
        outcome = "success" if success else "failure"
        with self._lock:
            self._requests[outcome] += 1
            self._data_points[outcome] += data_points

    def durations(self) -> dict[str, float]:
        with self._lock:
            return dict(self._durations)

    def export_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(self._requests), dict(self._data_points)
