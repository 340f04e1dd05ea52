"""A direct path for the SDK's check of each measurement's attributes.

The OpenTelemetry SDK (1.45) passes the attributes of every measurement
through ``_clean_attribute_value`` in ``Measurement.__post_init__``. That
function copies the mapping and tests each key and value with isinstance
against several types. Skipping those tests for plain dicts cut an agent's
CPU at a 1 s interval by 4 % (0.961x, two agents side by side, median of 6
rounds of 30 s).

The scrapers build attribute sets as dicts of non-empty string keys and
values of exact scalar types, for which the SDK's check always returns a
plain copy. The function that direct_cleaner builds returns that copy
after one exact type test per entry and hands every other input to the
SDK's own function, so the result is the same for every input.

NOTE: this replaces a module attribute of a private SDK module that the
lock file pins. If the module changes shape, the replacement is skipped
with one warning and the SDK's own check runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

_log = structlog.get_logger(__name__)

# The value types that the SDK's check returns unchanged when no maximum
# string length is set. Exact types only: a subclass takes the SDK's path.
_PLAIN_VALUE_TYPES = frozenset((type(None), bool, int, float, bytes, str))

Cleaner = Callable[[Any, int | None], Any]


def direct_cleaner(sdk_clean: Cleaner) -> Cleaner:
    """Return a function that cleans attributes as ``sdk_clean`` does, faster for plain dicts."""

    def clean_attributes(value: Any, max_string_value_length: int | None) -> Any:
        if type(value) is dict and max_string_value_length is None:
            for key, item in value.items():
                if type(key) is not str or not key or type(item) not in _PLAIN_VALUE_TYPES:
                    break
            else:
                return dict(value)
        return sdk_clean(value, max_string_value_length)

    clean_attributes.sdk_clean = sdk_clean  # type: ignore[attr-defined]
    return clean_attributes


def use_direct_attribute_cleaning() -> bool:
    """Make the SDK's measurements clean their attributes through direct_cleaner.

    Return whether the SDK's module had the expected shape. A second call
    changes nothing.
    """
    try:
        from opentelemetry.sdk.metrics._internal import measurement
    except ImportError:
        _log.warning(
            "sdk_attribute_check_kept",
            reason="module opentelemetry.sdk.metrics._internal.measurement not found",
        )
        return False
    current = getattr(measurement, "_clean_attribute_value", None)
    if hasattr(current, "sdk_clean"):
        return True
    if not callable(current):
        _log.warning(
            "sdk_attribute_check_kept",
            reason="function _clean_attribute_value missing from the SDK's measurement module",
        )
        return False
    measurement._clean_attribute_value = direct_cleaner(current)  # type: ignore[attr-defined,assignment]
    return True
