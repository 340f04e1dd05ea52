"""A resource per process: the process scraper's identity moved from its points at export.

The semantic conventions define process.pid, process.executable.name and the
other identity attributes as resource attributes, and the Collector's
hostmetrics receiver exports each process as a resource of its own. A
MeterProvider has one resource, so the process scraper records the identity
on its points, where the SDK needs it to keep one process's series apart from
another's. Before encoding, the exporter moves those attributes to a resource
per process: the agent's resource plus the process's identity. The host's
metrics stay on the agent's resource, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from otel_collector import catalogue

Identity = tuple[tuple[str, Any], ...]
Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

# Metric name -> the attribute keys that identify the resource its points belong to.
_RESOURCE_KEYS: dict[str, frozenset[str]] = {
    spec.name: frozenset(spec.resource_attribute_keys)
    for spec in catalogue.METRICS
    if spec.resource_attributes
}


class _LastExportCache(Generic[Key, Value]):
    """Values built during this export or the previous one; ``rotate`` forgets the older."""

    def __init__(self) -> None:
        self._previous: dict[Key, Value] = {}
        self._current: dict[Key, Value] = {}

    def get(self, key: Key, build: Callable[[], Value]) -> Value:
        value = self._current.get(key)
        if value is None:
            value = self._previous.get(key)
            if value is None:
                value = build()
            self._current[key] = value
        return value

    def rotate(self) -> None:
        self._previous, self._current = self._current, {}


class ProcessResources:
    """Splitter of collected metrics into the agent's resource and one resource per process.

    Resources and attribute splits built for the previous export are reused,
    so a process that lives on costs no new Resource; one that exited leaves
    nothing behind after one more export. Not thread-safe: the exporter calls
    it from one thread at a time.
    """

    def __init__(self, resource_keys: Mapping[str, frozenset[str]] = _RESOURCE_KEYS) -> None:
        self._resource_keys = resource_keys
        # identity -> the agent's resource it was built on, and the merged resource
        self._resources: _LastExportCache[Identity, tuple[Resource, Resource]] = _LastExportCache()
        # a point's attributes -> its identity and its other attributes
        self._partitions: _LastExportCache[
            tuple[tuple[str, Any], ...], tuple[Identity, dict[str, Any]]
        ] = _LastExportCache()

    def split(self, data: MetricsData) -> MetricsData:
        """Return ``data`` with each process's points under a resource of their own."""
        if not any(
            metric.name in self._resource_keys
            for resource_metrics in data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ):
            return data
        result: list[ResourceMetrics] = []
        for resource_metrics in data.resource_metrics:
            result.extend(self._split_resource(resource_metrics))
        self._resources.rotate()
        self._partitions.rotate()
        return MetricsData(resource_metrics=result)

    def _split_resource(self, resource_metrics: ResourceMetrics) -> list[ResourceMetrics]:
        host_scopes: list[ScopeMetrics] = []
        # identity -> scope position -> metric position -> the points without the identity
        processes: dict[Identity, dict[int, dict[int, list[NumberDataPoint]]]] = {}
        for position, scope_metrics in enumerate(resource_metrics.scope_metrics):
            host_metrics = []
            for metric_position, metric in enumerate(scope_metrics.metrics):
                keys = self._resource_keys.get(metric.name)
                data = metric.data
                # Observable instruments produce only sums and gauges.
                if keys is None or not isinstance(data, Sum | Gauge):
                    host_metrics.append(metric)
                    continue
                for point in data.data_points:
                    identity, rest = self._partition(point.attributes or {}, keys)
                    by_scope = processes.setdefault(identity, {})
                    by_metric = by_scope.setdefault(position, {})
                    by_metric.setdefault(metric_position, []).append(NumberDataPoint(
                        rest, point.start_time_unix_nano, point.time_unix_nano, point.value,
                        point.exemplars,
                    ))
            if host_metrics:
                host_scopes.append(dataclasses.replace(scope_metrics, metrics=host_metrics))

        result = []
        if host_scopes:
            result.append(dataclasses.replace(resource_metrics, scope_metrics=host_scopes))
        base = resource_metrics.resource
        for identity, by_scope in processes.items():
            scopes = []
            for position, by_metric in by_scope.items():
                scope_metrics = resource_metrics.scope_metrics[position]
                metrics = [
                    _with_points(scope_metrics.metrics[metric_position], points)
                    for metric_position, points in by_metric.items()
                ]
                scopes.append(ScopeMetrics(scope_metrics.scope, metrics, scope_metrics.schema_url))
            result.append(ResourceMetrics(
                resource=self._resource(base, identity),
                scope_metrics=scopes,
                schema_url=resource_metrics.schema_url,
            ))
        return result

    def _partition(
        self, attributes: Mapping[str, Any], keys: frozenset[str]
    ) -> tuple[Identity, dict[str, Any]]:
        """Split a point's attributes into the identity, sorted by key, and the others."""

        def build() -> tuple[Identity, dict[str, Any]]:
            identity = tuple(sorted((k, v) for k, v in attributes.items() if k in keys))
            return identity, {k: v for k, v in attributes.items() if k not in keys}

        try:
            return self._partitions.get(tuple(attributes.items()), build)
        except TypeError:  # a sequence value: not hashable, split every time
            return build()

    def _resource(self, base: Resource, identity: Identity) -> Resource:
        """Return the base resource merged with the identity."""

        def build() -> tuple[Resource, Resource]:
            return base, Resource({**base.attributes, **dict(identity)}, base.schema_url)

        built_on, resource = self._resources.get(identity, build)
        if built_on is not base:  # another MeterProvider's resource: not cached
            return build()[1]
        return resource


def _with_points(metric: Metric, points: list[NumberDataPoint]) -> Metric:
    data = metric.data
    if isinstance(data, Sum):
        return Metric(metric.name, metric.description, metric.unit,
                      Sum(points, data.aggregation_temporality, data.is_monotonic))
    return Metric(metric.name, metric.description, metric.unit, Gauge(points))
