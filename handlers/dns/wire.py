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
import re
import socket
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
FLAG_CD = 0x0010
EDNS_FLAG_DO = 0x8000  # in the OPT record's TTL field (RFC 3225 §3)
TYPE_SOA = 6
MAX_POINTERS = 64  # compression pointers followed in one name before it counts as a loop

_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")
_QUESTION_TAIL = struct.Struct("!HH")
# dnspython's escaping of label bytes in presentation form (dns.name._escapify), so names read
# here compare equal to names dnspython would have printed.
_SPECIAL = frozenset(b'"().;\\@$')
_PLAIN_BYTES = bytes(b for b in range(0x21, 0x7F) if b not in _SPECIAL)  # printed as they are
# A name of letters, digits, hyphens and underscores only: its wire form is its labels' bytes, and
# its presentation form is itself. Every other name (escapes, other bytes) goes through dnspython.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


class MalformedAnswer(ValueError):
    """A response with our id and question whose contents do not parse."""


@dataclass(frozen=True)
class WireAnswer:
    """What the resolver needs from a response: the rcode (extended by OPT), the TC flag, and the
    answer section's IN records as (owner, type, text), owners lower-case without the final dot."""

    rcode: int
    truncated: bool
    records: tuple[tuple[str, int, str], ...]
    soa_owner: str | None = None  # the zone a negative answer comes from (its authority's SOA)


@dataclass(frozen=True)
class WireQuery:
    """A query ready to send: its id, its bytes, and its question section (to match the answer)."""

    id: int
    wire: bytes
    question: bytes


def encode_name(name: str) -> tuple[bytes, str]:
    """`name` in wire form, and in the presentation form the reader prints owners in (lower-case,
    no final dot). Raises dns.exception.DNSException for a name no query can carry (an empty
    label, a label over 63 octets, a name over 255)."""
    # Every query of a monitor cycle starts here: dnspython's parser, for names that need none of
    # it, was a tenth of the cycle's time.
    if len(name) <= 254 and _PLAIN_NAME.fullmatch(name):
        labels = name.rstrip(".").split(".")
        wire = b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels) + b"\x00"
        return wire, name.rstrip(".").lower()
    parsed = dns.name.from_text(name)
    encoded = parsed.to_wire()
    assert encoded is not None  # None only when writing into a file
    return encoded, parsed.to_text().rstrip(".").lower()


def build_query(encoded_name: bytes, rdtype: int, payload: int, *, dnssec: bool = False) -> WireQuery:
    """A recursive query for the name (wire form, see encode_name) and `rdtype`, with EDNS0
    advertising `payload` bytes (RFC 6891). `dnssec` sets DO, so the answer carries its RRSIGs
    (RFC 4035 §3.2.1), and CD, so a validating resolver hands over what it judges bogus (§3.2.2)."""
    query_id = random.getrandbits(16)
    question = encoded_name + _QUESTION_TAIL.pack(rdtype, CLASS_IN)
    opt = b"\x00" + _RECORD.pack(TYPE_OPT, payload, EDNS_FLAG_DO if dnssec else 0, 0)
    header = _HEADER.pack(query_id, FLAG_RD | (FLAG_CD if dnssec else 0), 1, 0, 0, 1)
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
    soa_owner: str | None = None
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
                elif section == 1 and rtype == TYPE_SOA and soa_owner is None:
                    soa_owner = owner
                elif section == 2 and rtype == TYPE_OPT:
                    rcode |= (ttl >> 24) << 4  # RFC 6891 §6.1.3: the upper 8 bits of the rcode
                offset = end
    except (struct.error, IndexError, ValueError, dns.exception.DNSException) as error:
        raise MalformedAnswer(str(error) or type(error).__name__) from None
    if offset != len(wire):
        raise MalformedAnswer("trailing bytes after the last record")
    return WireAnswer(rcode, bool(flags & FLAG_TC), tuple(records), soa_owner)


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
    if not label.translate(None, _PLAIN_BYTES):  # nothing left once the plain bytes are deleted
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
        return socket.inet_ntop(socket.AF_INET, wire[offset:end])
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
    if rtype == dns.rdatatype.TLSA:
        # Read as published, not judged: a digest of the wrong length is the zone's mistake, for the
        # DANE check to name (RFC 6698 §2.1), never a malformed answer (an outage).
        if end - offset < 3:
            raise MalformedAnswer("a TLSA record shorter than 3 octets")
        usage, selector, matching = wire[offset : offset + 3]
        return f"{usage} {selector} {matching} {wire[offset + 3 : end].hex()}".rstrip()
    rdata = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.RdataType.make(rtype), wire, offset, end - offset
    )
    return str(rdata.to_text())
