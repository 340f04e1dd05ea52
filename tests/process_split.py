"""A plain reference for the encoder's regrouping: the SDK's objects, a resource per process.

Slow and simple on purpose: the SDK's encoder applied to its result gives the
request that the agent's encoder must build byte for byte.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics
from opentelemetry.sdk.resources import Resource

from otel_collector.encoding import RESOURCE_KEYS


def split_by_process(data: MetricsData) -> MetricsData:
    """Return ``data`` with each process's points under the agent's resource plus its identity."""
    result: list[ResourceMetrics] = []
    for resource_metrics in data.resource_metrics:
        base = resource_metrics.resource
        host_scopes = []
        # identity -> scope position -> metric position -> points without the identity
        processes: dict[tuple[tuple[str, Any], ...], dict[int, dict[int, list[Any]]]] = {}
        for position, scope_metrics in enumerate(resource_metrics.scope_metrics):
            host_metrics = []
            for metric_position, metric in enumerate(scope_metrics.metrics):
                keys = RESOURCE_KEYS.get(metric.name)
                if keys is None:
                    host_metrics.append(metric)
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    identity = tuple(sorted((k, v) for k, v in attributes.items() if k in keys))
                    rest = {k: v for k, v in attributes.items() if k not in keys}
                    by_scope = processes.setdefault(identity, {})
                    by_scope.setdefault(position, {}).setdefault(metric_position, []).append(
                        dataclasses.replace(point, attributes=rest)
                    )
            if host_metrics:
                host_scopes.append(dataclasses.replace(scope_metrics, metrics=host_metrics))
        if host_scopes:
            result.append(dataclasses.replace(resource_metrics, scope_metrics=host_scopes))
        for identity, by_scope in processes.items():
            scopes = []
            for position, by_metric in by_scope.items():
                scope_metrics = resource_metrics.scope_metrics[position]
                metrics = [
                    dataclasses.replace(
                        scope_metrics.metrics[metric_position],
                        data=dataclasses.replace(
                            scope_metrics.metrics[metric_position].data, data_points=points
                        ),
                    )
                    for metric_position, points in by_metric.items()
                ]
                scopes.append(dataclasses.replace(scope_metrics, metrics=metrics))
            resource = Resource({**base.attributes, **dict(identity)}, base.schema_url)
            result.append(
                dataclasses.replace(resource_metrics, resource=resource, scope_metrics=scopes)
            )
    return MetricsData(resource_metrics=result)
