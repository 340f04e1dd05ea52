"""The benchmark's split of node_exporter's unmatched collectors: exporting, empty, in the resource."""

from __future__ import annotations

from bench import families

SCRAPE = """\
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="btrfs"} 1
node_scrape_collector_success{collector="zfs"} 1
node_scrape_collector_success{collector="textfile"} 1
node_scrape_collector_success{collector="bonding"} 0
node_scrape_collector_success{collector="made_up"} 1
node_cpu_seconds_total{cpu="0",mode="idle"} 12.5
node_zfs_abd_linear_cnt 0
node_textfile_scrape_error 0
"""


def test_collectors_split_by_samples() -> None:
    exporting, empty, in_resource = families.unmatched_collectors(SCRAPE)

    # cpu has an agent scraper, and bonding failed: neither is listed.
    assert exporting == ["made_up", "zfs"]  # made_up has no prefix, so it counts
    assert empty == ["btrfs", "textfile"]  # textfile exported only its own scrape status
    assert in_resource == []


RESOURCE_SCRAPE = """\
node_scrape_collector_success{collector="os"} 1
node_scrape_collector_success{collector="uname"} 1
node_os_info{name="Debian GNU/Linux",version_id="12"} 1
node_uname_info{machine="x86_64",nodename="vm",release="6.1.0",sysname="Linux"} 1
"""
AGENT_RESOURCE = frozenset(
    {"service.name", "host.name", "host.arch", "os.type", "os.description", "os.name"}
)


def test_resource_attributes_match_info_collectors() -> None:
    # os.version is missing, so only uname is matched.
    exporting, empty, in_resource = families.unmatched_collectors(RESOURCE_SCRAPE, AGENT_RESOURCE)

    assert exporting == ["os"]
    assert empty == []
    assert in_resource == ["uname"]


def test_info_collectors_count_without_resource() -> None:
    exporting, _, in_resource = families.unmatched_collectors(RESOURCE_SCRAPE)

    assert exporting == ["os", "uname"]
    assert in_resource == []


TIME_SCRAPE = """\
node_scrape_collector_success{collector="time"} 1
node_time_seconds 1.7964704e+09
"""


def test_time_matched_by_timestamps_from_the_host_clock() -> None:
    exporting, _, in_resource = families.unmatched_collectors(TIME_SCRAPE, clock_skew_s=0.02)

    assert exporting == []
    assert in_resource == ["time"]


def test_time_unmatched_by_skewed_or_missing_timestamps() -> None:
    for skew in (None, families.MAX_CLOCK_SKEW_S + 1):
        exporting, _, in_resource = families.unmatched_collectors(TIME_SCRAPE, clock_skew_s=skew)

        assert exporting == ["time"], skew
        assert in_resource == [], skew
