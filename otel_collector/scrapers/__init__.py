"""The scraper registry: every scraper, by the name the settings use."""

from __future__ import annotations

from collections.abc import Sequence

from otel_collector.scrapers.base import Scraper, ScraperContext
from otel_collector.scrapers.cpu import CpuScraper
from otel_collector.scrapers.disk import DiskScraper
from otel_collector.scrapers.filesystem import FilesystemScraper
from otel_collector.scrapers.kernel import KernelScraper
from otel_collector.scrapers.load import LoadScraper
from otel_collector.scrapers.memory import MemoryScraper
from otel_collector.scrapers.netstat import NetstatScraper
from otel_collector.scrapers.network import NetworkScraper
from otel_collector.scrapers.paging import PagingScraper
from otel_collector.scrapers.pressure import PressureScraper
from otel_collector.scrapers.process import ProcessScraper
from otel_collector.scrapers.processes import ProcessesScraper
from otel_collector.scrapers.system import SystemScraper

REGISTRY: dict[str, type[Scraper]] = {
    cls.name: cls
    for cls in (
        CpuScraper, MemoryScraper, PagingScraper, DiskScraper, FilesystemScraper,
        NetworkScraper, NetstatScraper, PressureScraper, LoadScraper, ProcessesScraper,
        KernelScraper, SystemScraper, ProcessScraper,
    )
}


def build(names: Sequence[str], context: ScraperContext) -> list[Scraper]:
    """Create the named scrapers; an unknown or repeated name raises ValueError quoting it."""
    seen: set[str] = set()
    scrapers = []
    for name in names:
        if name not in REGISTRY:
            raise ValueError(f"unknown scraper {name!r}; expected one of {', '.join(REGISTRY)}")
        if name in seen:
            raise ValueError(f"scraper {name!r} is listed twice")
        seen.add(name)
        scrapers.append(REGISTRY[name](context))
    return scrapers
