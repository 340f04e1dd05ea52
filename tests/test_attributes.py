"""The direct path for the SDK's attribute check gives the SDK's own results."""

from __future__ import annotations

import enum
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from module_copies import fresh_copy
from opentelemetry import attributes as api_attributes
from opentelemetry.context import Context
from opentelemetry.sdk.metrics._internal import measurement

from otel_collector.attributes import direct_cleaner, use_direct_attribute_cleaning


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    """String subclass, which the direct path hands to the SDK's function."""


def _sdk_clean_function() -> Any:
    """Return the API's attribute check from a copy of its module that nothing has replaced."""
    return fresh_copy(api_attributes)._clean_attribute_value


CASES = [
    ({"system.device": "/dev/vda", "system.filesystem.state": "used"}, None),
    ({"b": 1, "a": 1.5, "c": True, "d": None, "e": b"x"}, None),
    ({"": "empty key dropped", "kept": 1}, None),
    ({1: "int key turned into text", "x": 2}, None),
    ({"list": ["x", "y"], "tuple": (1, 2)}, None),
    ({"nested": {"z": 1}}, None),
    ({"enum": Color.RED}, None),
    ({"subclass": Name("value")}, None),
    ({"object": object()}, None),
    ({"long": "abcdef"}, 3),
    (OrderedDict([("b", 1), ("a", 2)]), None),
    (MappingProxyType({"proxy": "value"}), None),
    ({}, None),
    ("plain text", None),
    (["a", 1], None),
]


@pytest.mark.parametrize(("value", "max_length"), CASES)
def test_direct_cleaner_equals_sdk(value: Any, max_length: int | None) -> None:
    sdk_clean = _sdk_clean_function()
    expected = sdk_clean(value, max_length)
    found = direct_cleaner(sdk_clean)(value, max_length)
    assert found == expected
    assert repr(found) == repr(expected)  # True, 1 and 1.0 stay apart
    assert type(found) is type(expected)


def test_direct_cleaner_copies_the_mapping() -> None:
    attributes = {"cpu": "0", "state": "user"}
    cleaned = direct_cleaner(_sdk_clean_function())(attributes, None)
    assert cleaned == attributes
    assert cleaned is not attributes


def test_measurements_use_direct_path() -> None:
    assert use_direct_attribute_cleaning()
    assert use_direct_attribute_cleaning()
    replaced = measurement._clean_attribute_value
    assert hasattr(replaced, "sdk_clean")
    assert not hasattr(replaced.sdk_clean, "sdk_clean")
    attributes = {"cpu": "0", "": "dropped"}
    point = measurement.Measurement(
        1.0, time_unix_nano=1, instrument=None, context=Context(),  # type: ignore[arg-type]
        attributes=attributes,
    )
    assert point.attributes == {"cpu": "0"}
