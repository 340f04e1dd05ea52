"""The catalogue against its checked-in golden copy, the conventions' units, and the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

from otel_collector import catalogue, config
from otel_collector.scrapers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "catalogue.json"


def test_catalogue_matches_golden_file() -> None:
    """A rename, unit change or attribute change must also change the golden file."""
    golden = json.loads(GOLDEN.read_text())
    current = [
        {"name": s.name, "kind": s.kind.value, "unit": s.unit,
         "attributes": list(s.attribute_keys), "enabled": s.enabled}
        | ({"resource_attributes": list(s.resource_attribute_keys)} if s.resource_attributes else {})
        for s in catalogue.METRICS
    ]
    assert current == golden


def test_names_are_unique() -> None:
    names = [spec.name for spec in catalogue.METRICS]
    assert len(names) == len(set(names))


def test_units_are_ucum_or_annotations() -> None:
    for spec in catalogue.METRICS:
        assert re.fullmatch(r"By|By/s|s|Hz|1|\{[a-z_]+\}", spec.unit), spec.name


def test_counters_use_cumulative_units() -> None:
    for spec in catalogue.METRICS:
        if spec.name.endswith(".utilization"):
            assert spec.kind is catalogue.Kind.GAUGE
            assert spec.unit == "1"


def test_every_scraper_has_metrics_and_a_module() -> None:
    scrapers = {spec.scraper for spec in catalogue.METRICS} - {"agent"}
    assert scrapers == set(REGISTRY) == set(config.SCRAPERS)


def test_schema_url_pins_semconv_version() -> None:
    assert catalogue.SCHEMA_URL == "https://opentelemetry.io/schemas/1.44.0"


def test_readme_tables_are_generated_from_code() -> None:
    """Run `make readme` when this fails."""
    readme = (ROOT / "README.md").read_text()
    assert catalogue.markdown_table() in readme
    assert config.markdown_table() in readme
