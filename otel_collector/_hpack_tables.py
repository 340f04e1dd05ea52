"""HPACK static table and Huffman code (RFC 7541, Appendix A and Appendix B).

Data only, read by the HPACK decoder in otel_collector/probe.py. The values are
the tables of RFC 7541 (https://www.rfc-editor.org/rfc/rfc7541), generated from
the copy of those tables in the hpack package (version 4.2.0). The tests check
them against the examples of RFC 7541 Appendix C.
"""

from typing import Final

# RFC 7541 Appendix A: the static table. Index 1 is the first entry.
STATIC_TABLE: Final[tuple[tuple[str, str], ...]] = (
    (":authority", ""),  # 1
    (":method", "GET"),  # 2
    (":method", "POST"),  # 3
    (":path", "/"),  # 4
    (":path", "/index.html"),  # 5
    (":scheme", "http"),  # 6
    (":scheme", "https"),  # 7
    (":status", "200"),  # 8
    (":status", "204"),  # 9
    (":status", "206"),  # 10
    (":status", "304"),  # 11
    (":status", "400"),  # 12
    (":status", "404"),  # 13
    (":status", "500"),  # 14
    ("accept-charset", ""),  # 15
    ("accept-encoding", "gzip, deflate"),  # 16
    ("accept-language", ""),  # 17
    ("accept-ranges", ""),  # 18
    ("accept", ""),  # 19
    ("access-control-allow-origin", ""),  # 20
    ("age", ""),  # 21
    ("allow", ""),  # 22
    ("authorization", ""),  # 23
    ("cache-control", ""),  # 24
    ("content-disposition", ""),  # 25
    ("content-encoding", ""),  # 26
    ("content-language", ""),  # 27
    ("content-length", ""),  # 28
    ("content-location", ""),  # 29
    ("content-range", ""),  # 30
    ("content-type", ""),  # 31
    ("cookie", ""),  # 32
    ("date", ""),  # 33
    ("etag", ""),  # 34
    ("expect", ""),  # 35
    ("expires", ""),  # 36
    ("from", ""),  # 37
    ("host", ""),  # 38
    ("if-match", ""),  # 39
    ("if-modified-since", ""),  # 40
    ("if-none-match", ""),  # 41
    ("if-range", ""),  # 42
    ("if-unmodified-since", ""),  # 43
    ("last-modified", ""),  # 44
    ("link", ""),  # 45
    ("location", ""),  # 46
    ("max-forwards", ""),  # 47
    ("proxy-authenticate", ""),  # 48
    ("proxy-authorization", ""),  # 49
    ("range", ""),  # 50
    ("referer", ""),  # 51
    ("refresh", ""),  # 52
    ("retry-after", ""),  # 53
    ("server", ""),  # 54
    ("set-cookie", ""),  # 55
    ("strict-transport-security", ""),  # 56
    ("transfer-encoding", ""),  # 57
    ("user-agent", ""),  # 58
    ("vary", ""),  # 59
    ("via", ""),  # 60
    ("www-authenticate", ""),  # 61
)

# RFC 7541 Appendix B: the Huffman code of each symbol as (code, length in bits),
# indexed by symbol: the octets 0 to 255, then 256 for EOS. Codes are aligned
# to the least significant bit, as in the "code as hex" column of the RFC.
# fmt: off
HUFFMAN_CODES: Final[tuple[tuple[int, int], ...]] = (
    (0x1FF8, 13), (0x7FFFD8, 23), (0xFFFFFE2, 28), (0xFFFFFE3, 28),  # 0-3
    (0xFFFFFE4, 28), (0xFFFFFE5, 28), (0xFFFFFE6, 28), (0xFFFFFE7, 28),  # 4-7
    (0xFFFFFE8, 28), (0xFFFFEA, 24), (0x3FFFFFFC, 30), (0xFFFFFE9, 28),  # 8-11
    (0xFFFFFEA, 28), (0x3FFFFFFD, 30), (0xFFFFFEB, 28), (0xFFFFFEC, 28),  # 12-15
    (0xFFFFFED, 28), (0xFFFFFEE, 28), (0xFFFFFEF, 28), (0xFFFFFF0, 28),  # 16-19
    (0xFFFFFF1, 28), (0xFFFFFF2, 28), (0x3FFFFFFE, 30), (0xFFFFFF3, 28),  # 20-23
    (0xFFFFFF4, 28), (0xFFFFFF5, 28), (0xFFFFFF6, 28), (0xFFFFFF7, 28),  # 24-27
    (0xFFFFFF8, 28), (0xFFFFFF9, 28), (0xFFFFFFA, 28), (0xFFFFFFB, 28),  # 28-31
    (0x14, 6), (0x3F8, 10), (0x3F9, 10), (0xFFA, 12),  # 32-35
    (0x1FF9, 13), (0x15, 6), (0xF8, 8), (0x7FA, 11),  # 36-39
    (0x3FA, 10), (0x3FB, 10), (0xF9, 8), (0x7FB, 11),  # 40-43
    (0xFA, 8), (0x16, 6), (0x17, 6), (0x18, 6),  # 44-47
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),  # 48-51
    (0x1A, 6), (0x1B, 6), (0x1C, 6), (0x1D, 6),  # 52-55
    (0x1E, 6), (0x1F, 6), (0x5C, 7), (0xFB, 8),  # 56-59
    (0x7FFC, 15), (0x20, 6), (0xFFB, 12), (0x3FC, 10),  # 60-63
    (0x1FFA, 13), (0x21, 6), (0x5D, 7), (0x5E, 7),  # 64-67
    (0x5F, 7), (0x60, 7), (0x61, 7), (0x62, 7),  # 68-71
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),  # 72-75
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6A, 7),  # 76-79
    (0x6B, 7), (0x6C, 7), (0x6D, 7), (0x6E, 7),  # 80-83
    (0x6F, 7), (0x70, 7), (0x71, 7), (0x72, 7),  # 84-87
    (0xFC, 8), (0x73, 7), (0xFD, 8), (0x1FFB, 13),  # 88-91
    (0x7FFF0, 19), (0x1FFC, 13), (0x3FFC, 14), (0x22, 6),  # 92-95
    (0x7FFD, 15), (0x3, 5), (0x23, 6), (0x4, 5),  # 96-99
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),  # 100-103
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),  # 104-107
    (0x28, 6), (0x29, 6), (0x2A, 6), (0x7, 5),  # 108-111
    (0x2B, 6), (0x76, 7), (0x2C, 6), (0x8, 5),  # 112-115
    (0x9, 5), (0x2D, 6), (0x77, 7), (0x78, 7),  # 116-119
    (0x79, 7), (0x7A, 7), (0x7B, 7), (0x7FFE, 15),  # 120-123
    (0x7FC, 11), (0x3FFD, 14), (0x1FFD, 13), (0xFFFFFFC, 28),  # 124-127
    (0xFFFE6, 20), (0x3FFFD2, 22), (0xFFFE7, 20), (0xFFFE8, 20),  # 128-131
    (0x3FFFD3, 22), (0x3FFFD4, 22), (0x3FFFD5, 22), (0x7FFFD9, 23),  # 132-135
    (0x3FFFD6, 22), (0x7FFFDA, 23), (0x7FFFDB, 23), (0x7FFFDC, 23),  # 136-139
    (0x7FFFDD, 23), (0x7FFFDE, 23), (0xFFFFEB, 24), (0x7FFFDF, 23),  # 140-143
    (0xFFFFEC, 24), (0xFFFFED, 24), (0x3FFFD7, 22), (0x7FFFE0, 23),  # 144-147
    (0xFFFFEE, 24), (0x7FFFE1, 23), (0x7FFFE2, 23), (0x7FFFE3, 23),  # 148-151
    (0x7FFFE4, 23), (0x1FFFDC, 21), (0x3FFFD8, 22), (0x7FFFE5, 23),  # 152-155
    (0x3FFFD9, 22), (0x7FFFE6, 23), (0x7FFFE7, 23), (0xFFFFEF, 24),  # 156-159
    (0x3FFFDA, 22), (0x1FFFDD, 21), (0xFFFE9, 20), (0x3FFFDB, 22),  # 160-163
    (0x3FFFDC, 22), (0x7FFFE8, 23), (0x7FFFE9, 23), (0x1FFFDE, 21),  # 164-167
    (0x7FFFEA, 23), (0x3FFFDD, 22), (0x3FFFDE, 22), (0xFFFFF0, 24),  # 168-171
    (0x1FFFDF, 21), (0x3FFFDF, 22), (0x7FFFEB, 23), (0x7FFFEC, 23),  # 172-175
    (0x1FFFE0, 21), (0x1FFFE1, 21), (0x3FFFE0, 22), (0x1FFFE2, 21),  # 176-179
    (0x7FFFED, 23), (0x3FFFE1, 22), (0x7FFFEE, 23), (0x7FFFEF, 23),  # 180-183
    (0xFFFEA, 20), (0x3FFFE2, 22), (0x3FFFE3, 22), (0x3FFFE4, 22),  # 184-187
    (0x7FFFF0, 23), (0x3FFFE5, 22), (0x3FFFE6, 22), (0x7FFFF1, 23),  # 188-191
    (0x3FFFFE0, 26), (0x3FFFFE1, 26), (0xFFFEB, 20), (0x7FFF1, 19),  # 192-195
    (0x3FFFE7, 22), (0x7FFFF2, 23), (0x3FFFE8, 22), (0x1FFFFEC, 25),  # 196-199
    (0x3FFFFE2, 26), (0x3FFFFE3, 26), (0x3FFFFE4, 26), (0x7FFFFDE, 27),  # 200-203
    (0x7FFFFDF, 27), (0x3FFFFE5, 26), (0xFFFFF1, 24), (0x1FFFFED, 25),  # 204-207
    (0x7FFF2, 19), (0x1FFFE3, 21), (0x3FFFFE6, 26), (0x7FFFFE0, 27),  # 208-211
    (0x7FFFFE1, 27), (0x3FFFFE7, 26), (0x7FFFFE2, 27), (0xFFFFF2, 24),  # 212-215
    (0x1FFFE4, 21), (0x1FFFE5, 21), (0x3FFFFE8, 26), (0x3FFFFE9, 26),  # 216-219
    (0xFFFFFFD, 28), (0x7FFFFE3, 27), (0x7FFFFE4, 27), (0x7FFFFE5, 27),  # 220-223
    (0xFFFEC, 20), (0xFFFFF3, 24), (0xFFFED, 20), (0x1FFFE6, 21),  # 224-227
    (0x3FFFE9, 22), (0x1FFFE7, 21), (0x1FFFE8, 21), (0x7FFFF3, 23),  # 228-231
    (0x3FFFEA, 22), (0x3FFFEB, 22), (0x1FFFFEE, 25), (0x1FFFFEF, 25),  # 232-235
    (0xFFFFF4, 24), (0xFFFFF5, 24), (0x3FFFFEA, 26), (0x7FFFF4, 23),  # 236-239
    (0x3FFFFEB, 26), (0x7FFFFE6, 27), (0x3FFFFEC, 26), (0x3FFFFED, 26),  # 240-243
    (0x7FFFFE7, 27), (0x7FFFFE8, 27), (0x7FFFFE9, 27), (0x7FFFFEA, 27),  # 244-247
    (0x7FFFFEB, 27), (0xFFFFFFE, 28), (0x7FFFFEC, 27), (0x7FFFFED, 27),  # 248-251
    (0x7FFFFEE, 27), (0x7FFFFEF, 27), (0x7FFFFF0, 27), (0x3FFFFEE, 26),  # 252-255
    (0x3FFFFFFF, 30),  # 256
)
# fmt: on
