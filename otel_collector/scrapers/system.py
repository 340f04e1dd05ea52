"""System scraper: uptime, from /proc/uptime of the host."""

from __future__ import annotations

from otel_collector.scrapers.base import Point, Reading, Scraper


def parse_uptime(text: str) -> float:
    """Return the first field of /proc/uptime: seconds since boot."""
    return float(text.split(maxsplit=1)[0])


class SystemScraper(Scraper):
    name = "system"

    def scrape(self) -> Reading:
        text = self.read("uptime", self.host.read_text, "/proc/uptime")
        if text is None:
            return {}
        return {"system.uptime": [Point(parse_uptime(text))]}
