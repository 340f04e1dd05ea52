"""Agent scraper: the agent's own collection and export figures."""

from __future__ import annotations

from typing import Any

from otel_collector.scrapers.base import Point, Reading, Scraper
from otel_collector.selftelemetry import AgentStats


def agent_points(
    durations: dict[str, float],
    errors: dict[str, int],
    requests: dict[str, int],
    data_points: dict[str, int],
) -> Reading:
    return {
        "otel_host_agent.scraper.duration": [
            Point(seconds, {"scraper": name}) for name, seconds in sorted(durations.items())
        ],
        "otel_host_agent.scraper.errors": [
            Point(errors.get(name, 0), {"scraper": name}) for name in sorted(durations)
        ],
        "otel_host_agent.export.requests": [
            Point(requests.get(outcome, 0), {"outcome": outcome})
            for outcome in ("success", "failure")
        ],
        "otel_host_agent.export.data_points": [
            Point(data_points.get(outcome, 0), {"outcome": outcome})
            for outcome in ("success", "failure")
        ],
    }


class AgentScraper(Scraper):
    """Runs last in each cycle, so the durations it reports are this cycle's."""

    name = "agent"

    def __init__(self, *args: Any, stats: AgentStats, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stats = stats

    def scrape(self) -> Reading:
        requests, data_points = self._stats.export_counts()
        return agent_points(
            self._stats.durations(), self.context.errors.errors_by_scraper(), requests, data_points
        )
