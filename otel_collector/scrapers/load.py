"""Load scraper: the kernel's 1, 5 and 15 minute load averages (psutil)."""

from __future__ import annotations

import psutil

from otel_collector.scrapers.base import Point, Reading, Scraper

NAMES = ("system.cpu.load_average.1m", "system.cpu.load_average.5m", "system.cpu.load_average.15m")


def load_points(averages: tuple[float, float, float]) -> Reading:
    return {name: [Point(value)] for name, value in zip(NAMES, averages, strict=True)}


class LoadScraper(Scraper):
    name = "load"

    def scrape(self) -> Reading:
        averages = self.read("getloadavg", psutil.getloadavg)
        return load_points(averages) if averages is not None else {}
