"""The benchmark's split of node_exporter's unmatched collectors into exporting and empty ones."""

from __future__ import annotations

from bench import families

SCRAPE = """\
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="btrfs"} 1
node_scrape_collector_success{collector="conntrack"} 1
node_scrape_collector_success{collector="textfile"} 1
node_scrape_collector_success{collector="bonding"} 0
node_scrape_collector_success{collector="made_up"} 1
node_cpu_seconds_total{cpu="0",mode="idle"} 12.5
node_nf_conntrack_entries 7
node_textfile_scrape_error 0
"""


def test_collectors_split_by_samples() -> None:
    exporting, empty = families.unmatched_collectors(SCRAPE)

    # cpu has an agent scraper, and bonding failed: neither is listed.
    assert exporting == ["conntrack", "made_up"]  # made_up has no prefix, so it counts
    assert empty == ["btrfs", "textfile"]  # textfile exported only its own scrape status
