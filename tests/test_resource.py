"""OS attributes of the resource, read from os-release(5)."""

from __future__ import annotations

import platform
from pathlib import Path

from otel_collector import resource
from otel_collector.hostfs import HostRoot

SAMPLE = """\
# a comment, then a blank line

NAME="Example Linux"
VERSION_ID=24.04
PRETTY_NAME='Example Linux 24.04 "Noble"'
BUILD_ID="2026-11-30 \\"rc\\""
VARIANT="unterminated
ID=example
"""


def test_parse_follows_shell_quoting() -> None:
    parsed = resource.parse_os_release(SAMPLE)

    assert parsed == {
        "NAME": "Example Linux",
        "VERSION_ID": "24.04",
        "PRETTY_NAME": 'Example Linux 24.04 "Noble"',
        "BUILD_ID": '2026-11-30 "rc"',
        "ID": "example",
    }


def test_host_attributes_match_stdlib_parser() -> None:
    # platform.freedesktop_os_release is a second, independent parser of the same file.
    expected = platform.freedesktop_os_release()
    attributes = resource.os_attributes(HostRoot("/"))

    assert attributes["os.type"] == "linux"
    assert attributes["os.description"] == (
        f"{expected['PRETTY_NAME']} (Linux {platform.release()})"
    )
    for variable, attribute in resource.OS_RELEASE_ATTRIBUTES.items():
        assert attributes.get(attribute) == (expected.get(variable) or None), variable


def test_usr_lib_os_release_is_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text(SAMPLE)

    attributes = resource.os_attributes(HostRoot(str(tmp_path)))

    assert attributes["os.name"] == "Example Linux"
    assert attributes["os.version"] == "24.04"
    assert attributes["os.build_id"] == '2026-11-30 "rc"'


def test_empty_os_release_keeps_kernel(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('NAME=""\nBUILD_ID=\n')

    assert resource.os_attributes(HostRoot(str(tmp_path))) == {
        "os.type": "linux",
        "os.description": f"Linux {platform.release()}",
    }
    assert resource.os_attributes(HostRoot(str(tmp_path / "nothing"))) == {
        "os.type": "linux",
        "os.description": f"Linux {platform.release()}",
    }
