"""Health probe: send one grpc.health.v1 Check to the local agent and exit with its outcome.

The `healthcheck` subcommand runs main(). Container runtimes start it every few
seconds in an image without a shell, so it imports only grpc, the health protocol
stubs and the standard library. Exit statuses:

    0  the service is SERVING
    1  the service is NOT_SERVING, or the server does not know it (NOT_FOUND)
    2  invalid arguments (Docker also reserves 2, so no health outcome uses it)
    3  cannot connect: the channel was not ready within the timeout
    4  the Check RPC failed after connecting (any other status, or timed out)
"""

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from otel_collector import defaults

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_INVALID_ARGUMENTS = 2
EXIT_CANNOT_CONNECT = 3
EXIT_RPC_FAILED = 4

HEALTH_PORT_ENV = "HOST_AGENT_HEALTH_PORT"
DEFAULT_TIMEOUT_S = 2.0

_CHANNEL_OPTIONS = (
    # The agent is on this host, so an http_proxy variable in the container must not
    # send the probe through a proxy.
    ("grpc.enable_http_proxy", 0),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 1024),
)


class _OneLineErrorParser(argparse.ArgumentParser):
    """ArgumentParser that reports an invalid argument in one line instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID_ARGUMENTS, f"{self.prog}: {message}; see --help\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog=f"{defaults.EXECUTABLE} healthcheck",
        description=(
            "Send one gRPC health Check to the agent. Exit status: 0 SERVING, "
            "1 NOT_SERVING or unknown service, 2 invalid arguments, "
            "3 cannot connect, 4 the Check RPC failed."
        ),
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--address",
        help="gRPC target of the health service, such as localhost:13134 or [::1]:13134 "
        "(default: localhost and the port from --port)",
    )
    target.add_argument(
        "--port",
        type=int,
        help=f"port of the health service on localhost (default: ${HEALTH_PORT_ENV}, "
        f"or {defaults.HEALTH_PORT})",
    )
    parser.add_argument(
        "--service",
        default="",
        help=f'service to check: "" for the whole agent (default), '
        f'"{defaults.LIVENESS_SERVICE}" or "{defaults.READINESS_SERVICE}"',
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="maximum seconds for connecting and the Check together (default: %(default)s)",
    )
    return parser


def _resolve_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Return the gRPC target from the arguments and environment, or exit with status 2."""
    if args.address is not None:
        if not args.address.strip():
            parser.error("--address must not be empty")
        return str(args.address)

    if args.port is not None:
        port: int = args.port
        source = "--port"
    else:
        raw_port = os.environ.get(HEALTH_PORT_ENV, "").strip()
        if not raw_port:
            return f"localhost:{defaults.HEALTH_PORT}"
        source = HEALTH_PORT_ENV
        try:
            port = int(raw_port)
        except ValueError:
            parser.error(
                f"{HEALTH_PORT_ENV} must be a port number from 1 to 65535, got {raw_port!r}"
            )
    if not 1 <= port <= 65535:
        parser.error(f"{source} must be a port number from 1 to 65535, got {port}")
    return f"localhost:{port}"


def _report(message: str) -> None:
    print(f"healthcheck: {message}", file=sys.stderr)


def check(target: str, service: str, timeout_s: float) -> int:
    """Send one Check and return the exit status, printing one line on stderr unless SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            _report(
                f"cannot connect to the health service at {target} within {timeout_s:g} s; "
                "check that the agent is running and listening on that port"
            )
            return EXIT_CANNOT_CONNECT

        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        # The deadline covers connecting and the Check together, but a Check that
        # would get no time at all still goes out and fails with DEADLINE_EXCEEDED.
        remaining_s = max(deadline - time.monotonic(), 0.001)
        try:
            response = stub.Check(request, timeout=remaining_s)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.NOT_FOUND:
                _report(
                    f'service "{service}" is unknown to the health service at {target} '
                    f'(NOT_FOUND); use "", "{defaults.LIVENESS_SERVICE}" or '
                    f'"{defaults.READINESS_SERVICE}"'
                )
                return EXIT_NOT_SERVING
            _report(f"Check RPC to {target} failed: {code.name}: {error.details()}")
            return EXIT_RPC_FAILED

    if response.status == health_pb2.HealthCheckResponse.SERVING:
        return EXIT_SERVING
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    _report(f'service "{service}" at {target} is {status}')
    return EXIT_NOT_SERVING


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run one Check and return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if not (math.isfinite(args.timeout) and args.timeout > 0):
            parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
        target = _resolve_target(parser, args)
    except SystemExit as exit_request:
        # The parser exits with 2 on invalid arguments and with 0 after --help.
        code = exit_request.code
        return code if isinstance(code, int) else EXIT_INVALID_ARGUMENTS
    return check(target, args.service, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
