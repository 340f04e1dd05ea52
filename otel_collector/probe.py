"""Health probe: send one grpc.health.v1 Check to the local agent and exit with its outcome.

The `healthcheck` subcommand runs main(). Container runtimes start it every few
seconds in an image without a shell, so it uses only the standard library.
It contains a gRPC client over cleartext HTTP/2 with prior knowledge (RFC 9113,
section 3.3) that makes exactly one unary call, and an HPACK decoder (RFC 7541)
for the response headers. Importing grpcio instead costs about 38 MB and 0.3 s
per run.
Exit statuses:

    0  the service is SERVING
    1  the service is NOT_SERVING, or the server does not know it (NOT_FOUND)
    2  invalid arguments (Docker also reserves 2, so no health outcome uses it)
    3  cannot connect: no address of the target accepted a TCP connection in time
    4  the Check RPC failed after connecting: any other gRPC status, a malformed
       response, GOAWAY, RST_STREAM, or no response within the timeout
"""

import argparse
import contextlib
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple, NoReturn

from otel_collector import defaults
from otel_collector._hpack_tables import HUFFMAN_CODES, STATIC_TABLE

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_INVALID_ARGUMENTS = 2
EXIT_CANNOT_CONNECT = 3
EXIT_RPC_FAILED = 4

HEALTH_PORT_ENV = "HOST_AGENT_HEALTH_PORT"
DEFAULT_TIMEOUT_S = 2.0

CHECK_PATH = "/grpc.health.v1.Health/Check"
# HealthCheckRequest is one string field, so the request is one small DATA frame.
# This bound keeps it within the peer's initial SETTINGS_MAX_FRAME_SIZE (16384 octets).
MAX_SERVICE_BYTES = 16_000

# Names by number: gRPC status codes (grpc/grpc doc/statuscodes.md) and the
# HealthCheckResponse.ServingStatus enum (grpc/health/v1/health.proto).
_GRPC_STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip
_GRPC_OK = 0
_GRPC_NOT_FOUND = 5
_SERVING_STATUS_NAMES = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")
_SERVING = 1

# HTTP/2 (RFC 9113): frame types (section 6), flags, settings (section 6.5.2)
# and error codes (section 7).
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY = 0, 1, 3, 4, 5, 6, 7
_CONTINUATION = 9
_FLAG_ACK = 0x1
_FLAG_END_STREAM = 0x1
_FLAG_END_HEADERS = 0x4
_FLAG_PADDED = 0x8
_FLAG_PRIORITY = 0x20
_SETTINGS_ENABLE_PUSH = 0x2
_STREAM_ID = 1
# The default SETTINGS_MAX_FRAME_SIZE, which this client never raises.
_MAX_FRAME_SIZE = 16_384
# Bounds on what the client buffers from a misbehaving server: one header block
# (HEADERS plus CONTINUATION frames) and the response message.
_MAX_HEADER_BLOCK_BYTES = 65_536
_MAX_RESPONSE_BYTES = 16_384
_HTTP2_ERROR_NAMES = (
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
)  # fmt: skip

# grpc-message can be long and contain any text, but the report is one short line.
_MAX_REPORTED_MESSAGE_CHARS = 200


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
        help="HOST:PORT of the health service, such as localhost:13134 or [::1]:13134; "
        "every address that HOST resolves to is tried in turn "
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


def split_address(address: str) -> tuple[str, int]:
    """Split HOST:PORT or [IPV6]:PORT into the host and the port, or raise ValueError."""
    host, separator, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address needs brackets, such as [::1]:13134")
    if not separator or not host or not port_text.isdigit():
        raise ValueError("expected HOST:PORT or [IPV6]:PORT, such as localhost:13134")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"the port must be from 1 to 65535, got {port}")
    return host, port


def _resolve_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Return HOST:PORT from the arguments and environment, or exit with status 2."""
    if args.address is not None:
        if not args.address.strip():
            parser.error("--address must not be empty")
        try:
            split_address(args.address)
        except ValueError as error:
            parser.error(f"--address {args.address!r} is invalid: {error}")
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


def _encode_service(parser: argparse.ArgumentParser, service: str) -> bytes:
    """Return the service name as UTF-8, or exit with status 2 if it cannot be sent."""
    try:
        encoded = service.encode("utf-8")
    except UnicodeEncodeError:
        parser.error(f"--service {service!r} is not valid UTF-8")
    if len(encoded) > MAX_SERVICE_BYTES:
        parser.error(
            f"--service must be at most {MAX_SERVICE_BYTES} bytes in UTF-8, got {len(encoded)}"
        )
    return encoded


def _report(message: str) -> None:
    print(f"healthcheck: {message}", file=sys.stderr)


# HPACK header decoding (RFC 7541)


class HpackError(ValueError):
    """A header block that violates RFC 7541 (an HTTP/2 COMPRESSION_ERROR)."""


_HUFFMAN_EOS = 256
# Huffman symbols keyed by their code with a 1 bit prepended, so that one int
# contains both the bits and their count. Built on first use.
_huffman_symbols: dict[int, int] = {}


def _huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string literal (RFC 7541, section 5.2)."""
    if not _huffman_symbols:
        for octet, (code, length) in enumerate(HUFFMAN_CODES):
            _huffman_symbols[(1 << length) | code] = octet

    decoded = bytearray()
    key = 1
    for byte in data:
        for shift in range(7, -1, -1):
            key = (key << 1) | ((byte >> shift) & 1)
            symbol = _huffman_symbols.get(key)
            if symbol is not None:
                if symbol == _HUFFMAN_EOS:
                    raise HpackError("Huffman-coded string contains the EOS symbol")
                decoded.append(symbol)
                key = 1
    # What is left must be padding: at most 7 bits, all 1 (a prefix of the EOS code).
    padding_bits = key.bit_length() - 1
    if padding_bits > 7 or key & (key + 1):
        raise HpackError("Huffman-coded string has invalid padding")
    return bytes(decoded)


def _decode_integer(block: bytes, position: int, prefix_bits: int) -> tuple[int, int]:
    """Decode the integer at position with an N-bit prefix (RFC 7541, section 5.1).

    Return the value and the position after it. An integer with more than 5
    continuation octets is rejected, which bounds values at about 2**35.
    """
    prefix_max = (1 << prefix_bits) - 1
    value = block[position] & prefix_max
    position += 1
    if value < prefix_max:
        return value, position
    shift = 0
    while True:
        if position >= len(block):
            raise HpackError("header block ends inside an integer")
        if shift > 28:
            raise HpackError("integer in the header block is too large")
        byte = block[position]
        position += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _decode_string(block: bytes, position: int) -> tuple[str, int]:
    """Decode the string literal at position (RFC 7541, section 5.2).

    Return it with its octets mapped one to one onto Latin-1 characters, and the
    position after it.
    """
    if position >= len(block):
        raise HpackError("header block ends before a string literal")
    huffman = block[position] & 0x80
    length, position = _decode_integer(block, position, 7)
    end = position + length
    if end > len(block):
        raise HpackError("string literal is longer than the rest of the header block")
    octets = block[position:end]
    if huffman:
        octets = _huffman_decode(octets)
    return octets.decode("latin-1"), end


class HpackDecoder:
    """HPACK decoder (RFC 7541) for the header blocks of one HTTP/2 connection.

    Header names and values are returned as str, one Latin-1 character per octet.
    """

    def __init__(self, max_table_size: int = 4096) -> None:
        # The SETTINGS_HEADER_TABLE_SIZE that this endpoint advertises: the limit
        # of the size that the encoder may choose with a dynamic table size update.
        self.max_table_size = max_table_size
        self.table_size = max_table_size
        # Dynamic table, newest entry first: index 62 is entries[0].
        self.entries: list[tuple[str, str]] = []
        # Sum of the entry sizes, each the octets of name and value plus 32 (section 4.1).
        self.size = 0

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block into a list of (name, value) fields."""
        fields: list[tuple[str, str]] = []
        position = 0
        while position < len(block):
            first = block[position]
            if first & 0x80:  # 1xxxxxxx: indexed header field (section 6.1)
                index, position = _decode_integer(block, position, 7)
                fields.append(self._field(index))
            elif first & 0x40:  # 01xxxxxx: literal with incremental indexing (6.2.1)
                name, value, position = self._decode_literal(block, position, 6)
                self._insert(name, value)
                fields.append((name, value))
            elif first & 0x20:  # 001xxxxx: dynamic table size update (section 6.3)
                if fields:
                    raise HpackError("dynamic table size update after a header field")
                size, position = _decode_integer(block, position, 5)
                if size > self.max_table_size:
                    raise HpackError(
                        f"dynamic table size update to {size} exceeds the "
                        f"maximum of {self.max_table_size}"
                    )
                self.table_size = size
                self._evict()
            else:  # 0000xxxx and 0001xxxx: literal without indexing or never indexed
                name, value, position = self._decode_literal(block, position, 4)
                fields.append((name, value))
        return fields

    def _decode_literal(
        self, block: bytes, position: int, prefix_bits: int
    ) -> tuple[str, str, int]:
        index, position = _decode_integer(block, position, prefix_bits)
        if index:
            name = self._field(index)[0]
        else:
            name, position = _decode_string(block, position)
        value, position = _decode_string(block, position)
        return name, value, position

    def _field(self, index: int) -> tuple[str, str]:
        """Return the entry at index in the static table followed by the dynamic table."""
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic_index = index - len(STATIC_TABLE) - 1
        if 0 <= dynamic_index < len(self.entries):
            return self.entries[dynamic_index]
        raise HpackError(f"header table index {index} is out of range")

    def _insert(self, name: str, value: str) -> None:
        self.entries.insert(0, (name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def _evict(self) -> None:
        # An entry larger than the table empties it and is not kept (section 4.4).
        while self.size > self.table_size:
            name, value = self.entries.pop()
            self.size -= len(name) + len(value) + 32


# The request: HTTP/2 frames and gRPC messages


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """Return one HTTP/2 frame: a 9-octet header (RFC 9113, section 4.1) and the payload."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((frame_type, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def _encode_length(length: int) -> bytes:
    """Encode a string length as an HPACK integer with a 7-bit prefix and the H bit 0."""
    if length < 0x7F:
        return bytes((length,))
    encoded = bytearray((0x7F,))
    length -= 0x7F
    while length >= 0x80:
        encoded.append((length & 0x7F) | 0x80)
        length >>= 7
    encoded.append(length)
    return bytes(encoded)


def _encode_headers(fields: Sequence[tuple[str, str]]) -> bytes:
    """Encode fields as HPACK literals without indexing, with new names and no Huffman code.

    That representation (RFC 7541, section 6.2.2) needs no state shared with the server.
    """
    block = bytearray()
    for name, value in fields:
        name_octets = name.encode("latin-1")
        value_octets = value.encode("latin-1")
        block.append(0x00)
        block += _encode_length(len(name_octets)) + name_octets
        block += _encode_length(len(value_octets)) + value_octets
    return bytes(block)


def _encode_varint(value: int) -> bytes:
    """Encode a non-negative protobuf base-128 varint."""
    encoded = bytearray()
    while value >= 0x80:
        encoded.append((value & 0x7F) | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _grpc_timeout(remaining_s: float) -> str:
    """Format the grpc-timeout header: at most 8 digits and a unit (m: milliseconds)."""
    milliseconds = max(math.ceil(remaining_s * 1000), 1)
    if milliseconds <= 99_999_999:
        return f"{milliseconds}m"
    return f"{min(math.ceil(remaining_s), 99_999_999)}S"


def _encode_request(authority: str, service: bytes, remaining_s: float) -> bytes:
    """Return every octet the client sends: preface, SETTINGS, HEADERS and DATA frames."""
    # The dynamic table keeps its default size of 4096 octets, which HpackDecoder
    # supports, so SETTINGS only turns server push off.
    settings = _SETTINGS_ENABLE_PUSH.to_bytes(2, "big") + (0).to_bytes(4, "big")
    headers = _encode_headers(
        (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", CHECK_PATH),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", _grpc_timeout(remaining_s)),
            ("user-agent", f"{defaults.EXECUTABLE}-healthcheck"),
        )
    )
    # HealthCheckRequest: field 1 (service), wire type 2, so tag 0x0A. proto3 omits
    # an empty string.
    message = b"\x0a" + _encode_varint(len(service)) + service if service else b""
    # gRPC length-prefixed message: compressed flag 0, then a 4-octet length.
    grpc_message = b"\x00" + len(message).to_bytes(4, "big") + message
    return (
        _PREFACE
        + _frame(_SETTINGS, 0, 0, settings)
        + _frame(_HEADERS, _FLAG_END_HEADERS, _STREAM_ID, headers)
        + _frame(_DATA, _FLAG_END_STREAM, _STREAM_ID, grpc_message)
    )


# The response


class RpcError(Exception):
    """The Check failed after the TCP connection was open; str() describes why."""


class _Response(NamedTuple):
    grpc_status: int
    grpc_message: str
    # HealthCheckResponse.status when grpc_status is OK, else None.
    serving_status: int | None


class _FrameReader:
    """Reader of HTTP/2 frames from a socket, with a deadline on time.monotonic()."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = bytearray()

    def read_frame(self) -> tuple[int, int, int, bytes]:
        """Return the type, flags, stream identifier and payload of the next frame."""
        header = self._read(9)
        length = int.from_bytes(header[0:3], "big")
        if length > _MAX_FRAME_SIZE:
            raise RpcError(
                f"FRAME_SIZE_ERROR: the server sent a frame of {length} octets, "
                f"more than the maximum of {_MAX_FRAME_SIZE}"
            )
        stream_id = int.from_bytes(header[5:9], "big") & 0x7FFF_FFFF
        return header[3], header[4], stream_id, self._read(length)

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            remaining_s = self._deadline - time.monotonic()
            if remaining_s <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining_s)
            try:
                chunk = self._sock.recv(65_536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise RpcError("UNAVAILABLE: the server closed the connection before the response")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data


def _strip_padding(flags: int, payload: bytes, frame_name: str) -> bytes:
    """Remove the Pad Length field and the padding of a PADDED frame (RFC 9113, 6.1)."""
    if not flags & _FLAG_PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise RpcError(f"PROTOCOL_ERROR: {frame_name} frame has more padding than payload")
    return payload[1 : len(payload) - payload[0]]


def _describe_error_code(code: int) -> str:
    if code < len(_HTTP2_ERROR_NAMES):
        return _HTTP2_ERROR_NAMES[code]
    return f"error code {code}"


class _StreamReader:
    """Reader of the connection's frames until stream 1 ends, with its headers and DATA.

    It acknowledges SETTINGS and PING, ignores WINDOW_UPDATE, PRIORITY and frame types
    it does not know (RFC 9113, section 5.5), and raises RpcError on GOAWAY,
    RST_STREAM and protocol errors.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._frames = _FrameReader(sock, deadline)
        self._decoder = HpackDecoder()
        # The response headers and the trailers, or one Trailers-Only block.
        self.header_blocks: list[list[tuple[str, str]]] = []
        self.data = bytearray()
        self._block = bytearray()
        self._block_ends_stream = False
        self._in_header_block = False
        self._stream_ended = False

    def read_until_stream_end(self) -> None:
        while not self._stream_ended:
            frame_type, flags, stream_id, payload = self._frames.read_frame()
            if self._in_header_block and (frame_type != _CONTINUATION or stream_id != _STREAM_ID):
                raise RpcError("PROTOCOL_ERROR: a header block was not continued by CONTINUATION")
            if frame_type in (_HEADERS, _CONTINUATION):
                self._on_header_fragment(frame_type, flags, stream_id, payload)
            elif frame_type == _DATA:
                self._on_data(flags, stream_id, payload)
            else:
                self._on_control_frame(frame_type, flags, stream_id, payload)

    def _on_control_frame(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes
    ) -> None:
        if frame_type == _SETTINGS and not flags & _FLAG_ACK:
            if stream_id != 0 or len(payload) % 6:
                raise RpcError("PROTOCOL_ERROR: the server sent a malformed SETTINGS frame")
            self._send_control_frame(_frame(_SETTINGS, _FLAG_ACK, 0, b""))
        elif frame_type == _PING and not flags & _FLAG_ACK:
            self._send_control_frame(_frame(_PING, _FLAG_ACK, 0, payload))
        elif frame_type == _GOAWAY:
            code = int.from_bytes(payload[4:8], "big")
            debug = payload[8:].decode("utf-8", errors="replace")
            raise RpcError(
                f"UNAVAILABLE: the server closed the connection with GOAWAY "
                f"({_describe_error_code(code)}) {debug}".rstrip()
            )
        elif frame_type == _RST_STREAM and stream_id == _STREAM_ID:
            code = int.from_bytes(payload[0:4], "big")
            raise RpcError(
                f"UNAVAILABLE: the server reset the stream with RST_STREAM "
                f"({_describe_error_code(code)})"
            )
        elif frame_type == _PUSH_PROMISE:
            raise RpcError("PROTOCOL_ERROR: the server sent PUSH_PROMISE, which was disabled")

    def _send_control_frame(self, frame: bytes) -> None:
        # A connection that the server closed fails the next read, which reports it
        # better than the error of this write (broken pipe or reset).
        with contextlib.suppress(OSError):
            self._sock.sendall(frame)

    def _on_header_fragment(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes
    ) -> None:
        if stream_id != _STREAM_ID:
            raise RpcError(f"PROTOCOL_ERROR: the server sent headers on stream {stream_id}")
        if frame_type == _HEADERS:
            payload = _strip_padding(flags, payload, "HEADERS")
            if flags & _FLAG_PRIORITY:
                payload = payload[5:]  # stream dependency and weight
            self._block = bytearray(payload)
            self._block_ends_stream = bool(flags & _FLAG_END_STREAM)
        elif not self._in_header_block:
            raise RpcError("PROTOCOL_ERROR: CONTINUATION without a HEADERS frame")
        else:
            self._block += payload
        if len(self._block) > _MAX_HEADER_BLOCK_BYTES:
            raise RpcError(f"the response headers exceed {_MAX_HEADER_BLOCK_BYTES} octets")

        self._in_header_block = not flags & _FLAG_END_HEADERS
        if self._in_header_block:
            return
        # Every block must be decoded, in order, to keep the dynamic table in step.
        try:
            self.header_blocks.append(self._decoder.decode(bytes(self._block)))
        except HpackError as error:
            raise RpcError(f"COMPRESSION_ERROR: {error}") from None
        self._stream_ended = self._block_ends_stream

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != _STREAM_ID:
            raise RpcError(f"PROTOCOL_ERROR: the server sent DATA on stream {stream_id}")
        if len(self.header_blocks) != 1:
            raise RpcError("PROTOCOL_ERROR: the server sent DATA outside the response body")
        self.data += _strip_padding(flags, payload, "DATA")
        if len(self.data) > _MAX_RESPONSE_BYTES:
            raise RpcError(f"the response message exceeds {_MAX_RESPONSE_BYTES} octets")
        if flags & _FLAG_END_STREAM:
            raise RpcError("the response ended without trailers (no grpc-status)")


def _percent_decode(value: str) -> str:
    """Decode grpc-message: percent-encoded UTF-8 (gRPC over HTTP/2 protocol)."""
    pieces = value.encode("latin-1").split(b"%")
    decoded = bytearray(pieces[0])
    hex_digits = b"0123456789abcdefABCDEF"
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0] in hex_digits and piece[1] in hex_digits:
            decoded.append(int(piece[:2], 16))
            decoded += piece[2:]
        else:
            decoded += b"%" + piece
    return decoded.decode("utf-8", errors="replace")


def _interpret_response(header_blocks: list[list[tuple[str, str]]], data: bytes) -> _Response:
    """Check the HTTP status, and return grpc-status, grpc-message and the serving status.

    header_blocks are the response headers and the trailers, or one block for a
    Trailers-Only response.
    """
    http_status = dict(header_blocks[0]).get(":status")
    if http_status != "200":
        raise RpcError(f"UNAVAILABLE: HTTP status {http_status}, expected 200")
    if len(header_blocks) > 2:
        raise RpcError("PROTOCOL_ERROR: the response has more than one block of trailers")

    trailers = dict(header_blocks[-1])
    raw_status = trailers.get("grpc-status", "")
    if not raw_status.isdigit():
        raise RpcError(f"the response has no valid grpc-status, got {raw_status!r}")
    grpc_status = int(raw_status)
    grpc_message = _percent_decode(trailers.get("grpc-message", ""))
    serving_status = _decode_serving_status(data) if grpc_status == _GRPC_OK else None
    return _Response(grpc_status, grpc_message, serving_status)


def _decode_serving_status(data: bytes) -> int:
    """Return the status field of a gRPC-framed HealthCheckResponse (0 when absent)."""
    if len(data) < 5:
        raise RpcError("the response contains no message")
    if data[0] != 0:
        raise RpcError("the response message is compressed, which was not requested")
    if len(data) != 5 + int.from_bytes(data[1:5], "big"):
        raise RpcError("the response does not contain exactly one message")

    status = 0
    position = 5
    while position < len(data):
        tag, position = _decode_protobuf_varint(data, position)
        field_number, wire_type = tag >> 3, tag & 0x7
        if field_number == 1 and wire_type != 0:
            raise RpcError(f"HealthCheckResponse.status has wire type {wire_type}, expected 0")
        if wire_type == 0:
            value, position = _decode_protobuf_varint(data, position)
            if field_number == 1:
                status = value
        elif wire_type == 1:
            position += 8
        elif wire_type == 2:
            field_length, position = _decode_protobuf_varint(data, position)
            position += field_length
        elif wire_type == 5:
            position += 4
        else:
            raise RpcError(f"HealthCheckResponse has an invalid wire type {wire_type}")
        if position > len(data):
            raise RpcError("HealthCheckResponse ends inside a field")
    return status


def _decode_protobuf_varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(data):
            break
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise RpcError("HealthCheckResponse has a truncated or overlong varint")


# Connecting and the Check


class ConnectError(Exception):
    """No address of the target accepted a TCP connection; str() describes why."""


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """Connect to each address that host resolves to in turn, and return the first socket.

    NOTE: one address that drops connection attempts uses up the rest of the time,
    so the addresses after it are not tried.
    """
    # An ASCII host goes in as bytes, which spares the import of the IDNA codec.
    host_arg: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        addresses = socket.getaddrinfo(host_arg, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConnectError(f"cannot resolve {host}: {error.strerror}") from None

    reasons: list[str] = []
    for family, sock_type, proto, _, sockaddr in addresses:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            break
        sock = socket.socket(family, sock_type, proto)
        try:
            sock.settimeout(remaining_s)
            sock.connect(sockaddr)
        except TimeoutError:
            sock.close()
            reasons.append(f"{sockaddr[0]}: timed out")
        except OSError as error:
            sock.close()
            reasons.append(f"{sockaddr[0]}: {error.strerror or error}")
        else:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
    if not reasons:
        reasons.append("timed out")
    raise ConnectError(", ".join(reasons))


def _call_check(sock: socket.socket, authority: str, service: bytes, deadline: float) -> _Response:
    """Send the Check request on the open connection and return the response."""
    remaining_s = max(deadline - time.monotonic(), 0.001)
    sock.settimeout(remaining_s)
    sock.sendall(_encode_request(authority, service, remaining_s))
    reader = _StreamReader(sock, deadline)
    reader.read_until_stream_end()
    # Tell the server that the connection is done (RFC 9113, section 6.8): last
    # stream 0, NO_ERROR. The response is complete, so a failure here changes nothing.
    with contextlib.suppress(OSError):
        sock.sendall(_frame(_GOAWAY, 0, 0, bytes(8)))
    return _interpret_response(reader.header_blocks, bytes(reader.data))


def _one_line(text: str) -> str:
    """Collapse whitespace and shorten text to one line for the report."""
    line = " ".join(text.split())
    if len(line) > _MAX_REPORTED_MESSAGE_CHARS:
        line = line[: _MAX_REPORTED_MESSAGE_CHARS - 3] + "..."
    return line


def check(target: str, service: str, timeout_s: float) -> int:
    """Send one Check and return the exit status, printing one line on stderr unless SERVING.

    target is HOST:PORT or [IPV6]:PORT, and service must pass _encode_service.
    """
    deadline = time.monotonic() + timeout_s
    host, port = split_address(target)
    try:
        sock = _connect(host, port, deadline)
    except ConnectError as error:
        _report(
            f"cannot connect to the health service at {target} ({error}; timeout "
            f"{timeout_s:g} s); check that the agent is running and listening on that port"
        )
        return EXIT_CANNOT_CONNECT

    try:
        with sock:
            response = _call_check(sock, target, service.encode("utf-8"), deadline)
    except TimeoutError:
        _report(
            f"Check RPC to {target} failed: DEADLINE_EXCEEDED: no response within {timeout_s:g} s"
        )
        return EXIT_RPC_FAILED
    except RpcError as error:
        _report(f"Check RPC to {target} failed: {_one_line(str(error))}")
        return EXIT_RPC_FAILED
    except OSError as error:
        _report(f"Check RPC to {target} failed: UNAVAILABLE: {error.strerror or error}")
        return EXIT_RPC_FAILED
    return _exit_status(response, target, service)


def _exit_status(response: _Response, target: str, service: str) -> int:
    """Return the exit status for a complete response, printing one line unless SERVING."""
    code = response.grpc_status
    if code == _GRPC_NOT_FOUND:
        _report(
            f'service "{service}" is unknown to the health service at {target} '
            f'(NOT_FOUND); use "", "{defaults.LIVENESS_SERVICE}" or '
            f'"{defaults.READINESS_SERVICE}"'
        )
        return EXIT_NOT_SERVING
    if code != _GRPC_OK or response.serving_status is None:
        name = _GRPC_STATUS_NAMES[code] if code < len(_GRPC_STATUS_NAMES) else f"status {code}"
        detail = _one_line(response.grpc_message)
        _report(f"Check RPC to {target} failed: {name}" + (f": {detail}" if detail else ""))
        return EXIT_RPC_FAILED

    status = response.serving_status
    if status == _SERVING:
        return EXIT_SERVING
    name = _SERVING_STATUS_NAMES[status] if status < len(_SERVING_STATUS_NAMES) else f"{status}"
    _report(f'service "{service}" at {target} is {name}')
    return EXIT_NOT_SERVING


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run one Check and return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if not (math.isfinite(args.timeout) and args.timeout > 0):
            parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
        target = _resolve_target(parser, args)
        _encode_service(parser, args.service)
    except SystemExit as exit_request:
        # The parser exits with 2 on invalid arguments and with 0 after --help.
        code = exit_request.code
        return code if isinstance(code, int) else EXIT_INVALID_ARGUMENTS
    return check(target, args.service, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
