"""DNS messages on the wire for the resolver's UDP path: the query built and the answer read directly.

A monitor cycle sends tens of thousands of queries whose answers are plain TXT, A, AAAA, MX and
CNAME records. dnspython's Message parsing builds Name, Rdata, Rdataset and RRset objects for every
record of every section (the authority and additional sections included) and hashes each rdata
into a set; profiled over 2,000 domains it was about half of the cycle's CPU time. Here a response
is read once, by offsets: the answer section's records of class IN become (owner, type,
presentation text) in the form `resolver.Lookup` keeps, the other sections are only stepped over
(the OPT record is read for the extended rcode, RFC 6891 §6.1.3), and a type without a reader here
is handed to dnspython's rdata parser, so the text is the same either way.

Anything that does not add up (a pointer loop, a record past the end, trailing bytes, a rdata of
the wrong length) is a MalformedAnswer, which the resolver reports as an outage, as it did when
dnspython raised FormError.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import dns.exception
import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

CLASS_IN = 1
TYPE_OPT = 41
FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100
MAX_POINTERS = 64  # compression pointers followed in one name before it counts as a loop

_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")
_QUESTION_TAIL = struct.Struct("!HH")
# dnspython's escaping of label bytes in presentation form (dns.name._escapify), so names read
# here compare equal to names dnspython would have printed.
_SPECIAL = frozenset(b'"().;\\@$')


class MalformedAnswer(ValueError):
    """A response with our id and question whose contents do not parse."""


@dataclass(frozen=True)
class WireAnswer:
    """What the resolver needs from a response: the rcode (extended by OPT), the TC flag, and the
    answer section's IN records as (owner, type, text), owners lower-case without the final dot."""

    rcode: int
    truncated: bool
    records: tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class WireQuery:
    """A query ready to send: its id, its bytes, and its question section (to match the answer)."""

    id: int
    wire: bytes
    question: bytes


def build_query(name: str, rdtype: int, payload: int) -> WireQuery:
    """A recursive query for `name`/`rdtype` with EDNS0 advertising `payload` bytes (RFC 6891)."""
    query_id = random.getrandbits(16)
    encoded = dns.name.from_text(name).to_wire()
    assert encoded is not None  # None only when writing into a file
    question = encoded + _QUESTION_TAIL.pack(rdtype, CLASS_IN)
    opt = b"\x00" + _RECORD.pack(TYPE_OPT, payload, 0, 0)
    header = _HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 1)
    return WireQuery(query_id, header + question + opt, question)


def read_answer(wire: bytes, query: WireQuery) -> WireAnswer | None:
    """The answer to `query` in `wire`, or None when `wire` is not a response to it (another id,
    another question: a stray or spoofed datagram, to be ignored while waiting). Raises
    MalformedAnswer for a response to it that does not parse."""
    if len(wire) < _HEADER.size:
        return None
    query_id, flags, questions, answers, authority, additional = _HEADER.unpack_from(wire)
    if query_id != query.id or not flags & FLAG_QR:
        return None
    end_of_question = _HEADER.size + len(query.question)
    # The question is echoed as sent (no name before it to point at), up to the case of letters:
    # bytes.lower() changes only A-Z, never a length byte (at most 63).
    if questions != 1 or wire[_HEADER.size : end_of_question].lower() != query.question.lower():
        return None
    rcode = flags & 0xF
    records: dict[tuple[str, int, str], None] = {}
    offset = end_of_question
    try:
        for section, count in ((0, answers), (1, authority), (2, additional)):
            for _ in range(count):
                owner, offset = _read_name(wire, offset)
                rtype, rclass, ttl, length = _RECORD.unpack_from(wire, offset)
                offset += _RECORD.size
                end = offset + length
                if end > len(wire):
                    raise MalformedAnswer("a record runs past the end of the message")
                if section == 0 and rclass == CLASS_IN:
                    # An rdataset is a set: a record repeated in one answer counts once.
                    records[(owner, rtype, _rdata_text(wire, offset, end, rtype))] = None
                elif section == 2 and rtype == TYPE_OPT:
                    rcode |= (ttl >> 24) << 4  # RFC 6891 §6.1.3: the upper 8 bits of the rcode
                offset = end
    except (struct.error, IndexError, ValueError, dns.exception.DNSException) as error:
        raise MalformedAnswer(str(error) or type(error).__name__) from None
    if offset != len(wire):
        raise MalformedAnswer("trailing bytes after the last record")
    return WireAnswer(rcode, bool(flags & FLAG_TC), tuple(records))


def _read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (lower-case, escaped as dnspython prints it, no final dot) and the
    offset after it in the message (after the first pointer, when it is compressed)."""
    labels: list[str] = []
    after: int | None = None
    pointers = 0
    total = 0
    while True:
        length = wire[offset]
        if length >= 0xC0:
            pointers += 1
            if pointers > MAX_POINTERS:
                raise MalformedAnswer("a compression pointer loop")
            if after is None:
                after = offset + 2
            offset = ((length & 0x3F) << 8) | wire[offset + 1]
            continue
        if length > 63:
            raise MalformedAnswer("a label type that is not in use")
        offset += 1
        if length == 0:
            break
        label = wire[offset : offset + length]
        if len(label) != length:
            raise MalformedAnswer("a name runs past the end of the message")
        total += length + 1
        if total > 255:
            raise MalformedAnswer("a name longer than 255 octets")
        labels.append(_escape(label))
        offset += length
    return ".".join(labels).lower(), offset if after is None else after


def _escape(label: bytes) -> str:
    if all(0x21 <= b <= 0x7E and b not in _SPECIAL for b in label):
        return label.decode("ascii")
    parts = []
    for b in label:
        if b in _SPECIAL:
            parts.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            parts.append(chr(b))
        else:
            parts.append(f"\\{b:03d}")
    return "".join(parts)


def _rdata_text(wire: bytes, offset: int, end: int, rtype: int) -> str:
    """A record's data in the form resolver.Lookup keeps (see resolver._rdata_text)."""
    if rtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        strings = []
        while offset < end:
            length = wire[offset]
            strings.append(wire[offset + 1 : offset + 1 + length])
            offset += 1 + length
        if offset != end:
            raise MalformedAnswer("a TXT string runs past its record")
        return b"".join(strings).decode("utf-8", errors="replace")
    if rtype == dns.rdatatype.A:
        if end - offset != 4:
            raise MalformedAnswer("an A record that is not 4 octets")
        return ".".join(str(b) for b in wire[offset:end])
    if rtype == dns.rdatatype.AAAA:
        if end - offset != 16:
            raise MalformedAnswer("an AAAA record that is not 16 octets")
        return dns.ipv6.inet_ntoa(wire[offset:end])
    if rtype == dns.rdatatype.MX:
        (preference,) = struct.unpack_from("!H", wire, offset)
        host, after = _read_name(wire, offset + 2)
        if after != end:
            raise MalformedAnswer("an MX record of the wrong length")
        return f"{preference} {host}"
    if rtype in (dns.rdatatype.CNAME, dns.rdatatype.PTR, dns.rdatatype.NS):
        target, after = _read_name(wire, offset)
        if after != end:
            raise MalformedAnswer("a name record of the wrong length")
        return target
    rdata = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.RdataType.make(rtype), wire, offset, end - offset
    )
    return str(rdata.to_text())
