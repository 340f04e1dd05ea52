"""Build real scrapers on this host's /proc, or on a host root a test made."""

from __future__ import annotations

from collections.abc import Mapping

from otel_collector import config
from otel_collector.hostfs import HostRoot
from otel_collector.scrapers import REGISTRY
from otel_collector.scrapers.base import ErrorLog, Reading, Scraper, ScraperContext


def make_scraper(name: str, env: Mapping[str, str] | None = None, root: str = "/") -> Scraper:
    settings = config.resolve({}, {"HOST_AGENT_HOST_ROOT": root, **(env or {})})
    context = ScraperContext(
        settings, HostRoot(root), config.enabled_metrics(settings), ErrorLog()
    )
    return REGISTRY[name](context)


def values(reading: Reading, metric: str, **attributes: object) -> list[float]:
    """Values of the points of ``metric`` whose attributes include ``attributes``."""
    return [
        point.value
        for point in reading.get(metric, [])
        if all(point.attributes.get(key) == value for key, value in attributes.items())
    ]


def value(reading: Reading, metric: str, **attributes: object) -> float:
    found = values(reading, metric, **attributes)
    assert len(found) == 1, f"{metric} {attributes}: {found}"
    return found[0]
