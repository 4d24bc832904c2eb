"""handlers/dns/wire.py: answers read directly from the wire say what dnspython's parse says, and
anything that does not add up is refused. (The resolver's tests run the same path against NSD.)"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from handlers.dns.resolver import _from_message
from handlers.dns.wire import MalformedAnswer, WireQuery, build_query, encode_name, read_answer


def response_to(query: WireQuery, *answers: dns.rrset.RRset, rcode: int = 0) -> dns.message.Message:
    message = dns.message.from_wire(query.wire)
    response = dns.message.make_response(message)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    response.answer.extend(answers)
    # An authority and an additional section as NSD sends them: stepped over, never read.
    response.authority.append(dns.rrset.from_text("example.test.", 300, "IN", "NS", "ns.example.test."))
    response.additional.append(dns.rrset.from_text("ns.example.test.", 300, "IN", "A", "127.0.0.1"))
    return response


ANSWERS = [
    ("TXT", [dns.rrset.from_text("Example.TEST.", 60, "IN", "TXT", '"v=spf1 " "ip4:192.0.2.1 -all"')]),
    ("TXT", [dns.rrset.from_text("example.test.", 60, "IN", "TXT", '"a"', '"b"', '""', '"ünï\\\\"')]),
    ("MX", [dns.rrset.from_text("example.test.", 60, "IN", "MX", "10 MX.Example.test.", "20 mx2.other.")]),
    ("A", [dns.rrset.from_text("example.test.", 60, "IN", "A", "192.0.2.1", "198.51.100.7")]),
    ("AAAA", [dns.rrset.from_text("example.test.", 60, "IN", "AAAA", "2001:db8::1", "::ffff:192.0.2.1")]),
    (
        "TXT",
        [
            dns.rrset.from_text("example.test.", 60, "IN", "CNAME", "alias.example.test."),
            dns.rrset.from_text("alias.example.test.", 60, "IN", "TXT", '"at the end"'),
        ],
    ),
    ("PTR", [dns.rrset.from_text("example.test.", 60, "IN", "PTR", "host\\032with\\.odd.example.")]),
    ("SOA", [dns.rrset.from_text("example.test.", 60, "IN", "SOA", "ns. host. 1 2 3 4 5")]),
    ("CAA", [dns.rrset.from_text("example.test.", 60, "IN", "CAA", '0 issue "ca.example"')]),
]


@pytest.mark.parametrize(("rdtype", "answer"), ANSWERS)
def test_an_answer_reads_as_dnspython_reads_it(rdtype: str, answer: list[dns.rrset.RRset]) -> None:
    query = build_query(encode_name("example.test")[0], dns.rdatatype.from_text(rdtype), 1232)
    response = response_to(query, *answer)
    wire = response.to_wire()  # dnspython compresses names, so pointers are exercised
    ours = read_answer(wire, query)
    assert ours is not None
    assert ours == _from_message(dns.message.from_wire(wire))


def test_the_query_is_a_recursive_edns_query_for_the_name() -> None:
    query = build_query(encode_name("Example.test")[0], dns.rdatatype.TXT, 1232)
    message = dns.message.from_wire(query.wire)
    assert message.id == query.id and message.flags & dns.flags.RD and message.payload == 1232
    assert str(message.question[0]) == "Example.test. IN TXT"


def test_the_extended_rcode_of_opt_is_read() -> None:
    query = build_query(encode_name("example.test")[0], dns.rdatatype.TXT, 1232)
    response = response_to(query)
    response.use_edns(0, payload=1232)
    response.set_rcode(dns.rcode.BADVERS)  # 16: its upper bits live in OPT
    answer = read_answer(response.to_wire(), query)
    assert answer is not None and answer.rcode == dns.rcode.BADVERS


def test_a_datagram_for_another_query_is_ignored() -> None:
    query = build_query(encode_name("example.test")[0], dns.rdatatype.TXT, 1232)
    other = build_query(encode_name("other.test")[0], dns.rdatatype.TXT, 1232)
    wire = response_to(other).to_wire()
    assert read_answer(wire, query) is None  # another id and question
    spoofed = struct.pack("!H", query.id) + wire[2:]
    assert read_answer(spoofed, query) is None  # our id, another question
    assert read_answer(query.wire, query) is None  # not a response (QR clear)
    assert read_answer(b"\x00", query) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda wire: wire[:-3],  # a record cut short
        lambda wire: wire + b"\x00",  # trailing bytes
    ],
)
def test_a_broken_answer_is_malformed(damage: object) -> None:
    query = build_query(encode_name("example.test")[0], dns.rdatatype.TXT, 1232)
    answer = dns.rrset.from_text("example.test.", 60, "IN", "TXT", '"text"')
    wire = damage(response_to(query, answer).to_wire())  # type: ignore[operator]
    with pytest.raises(MalformedAnswer):
        read_answer(wire, query)


def test_a_compression_pointer_loop_is_malformed() -> None:
    query = build_query(encode_name("example.test")[0], dns.rdatatype.TXT, 1232)
    header = struct.pack("!HHHHHH", query.id, 0x8180, 1, 1, 0, 0)
    looping_owner = struct.pack("!H", 0xC000 | (len(header) + len(query.question)))  # points at itself
    record = looping_owner + struct.pack("!HHIH", 16, 1, 60, 2) + b"\x01x"
    with pytest.raises(MalformedAnswer):
        read_answer(header + query.question + record, query)
