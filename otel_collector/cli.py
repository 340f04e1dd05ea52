"""Command line: ``run`` (the default), ``config`` and ``healthcheck``.

``healthcheck`` runs every few seconds inside the container, so it is
dispatched before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from otel_collector import __version__, defaults

EXIT_INVALID_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    from otel_collector import config

    parser = argparse.ArgumentParser(
        prog=defaults.EXECUTABLE,
        description="Host-metrics agent: reads this host with psutil and exports "
        "OpenTelemetry metrics over OTLP/gRPC.",
        epilog="Commands: run (default) starts the agent; config prints the resolved "
        "settings; healthcheck asks the running agent's health service.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    config.add_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script and of ``python -m otel_collector``."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    if args and args[0] in ("run", "config", "healthcheck"):
        command = args.pop(0)
    if command == "healthcheck":
        from otel_collector import probe

        sys.exit(probe.main(args))

    from otel_collector import config as settings

    try:
        resolved = settings.parse_args(args, os.environ, _parser())
    except settings.ConfigError as error:
        print(f"{defaults.EXECUTABLE}: {error}", file=sys.stderr)
        sys.exit(EXIT_INVALID_CONFIG)

    if command == "config":
        json.dump(resolved.redacted(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.exit(0)

    from otel_collector import logs

    logs.configure(resolved.log_level, resolved.log_format)
    from otel_collector import agent

    sys.exit(agent.run(resolved))
