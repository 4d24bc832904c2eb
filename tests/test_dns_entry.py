"""handlers/dns/dns_entry.py: 255-byte strings, the BIND line, the answer size, the relative host."""

from __future__ import annotations

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from handlers.dns.dns_entry import (
    CLASSIC_UDP_LIMIT,
    MAX_STRING_BYTES,
    DnsEntry,
    quote_txt,
    split_txt,
    txt_answer_size,
)


@pytest.mark.parametrize("length", [0, 1, 254, 255, 256, 510, 511, 1000])
def test_split_keeps_every_string_within_255_bytes_and_joins_back(length: int) -> None:
    value = ("v=spf1 " + "ip4:192.0.2.1 " * 100)[:length]
    strings = split_txt(value)
    assert "".join(strings) == value
    assert all(len(s.encode()) <= MAX_STRING_BYTES for s in strings)
    assert len(strings) == max(1, -(-length // MAX_STRING_BYTES))


def test_split_never_cuts_a_utf8_character() -> None:
    value = "é" * 300
    strings = split_txt(value)
    assert "".join(strings) == value
    assert all(len(s.encode()) <= MAX_STRING_BYTES for s in strings)


def test_quoting_escapes_quotes_and_backslashes() -> None:
    assert quote_txt('a"b\\c') == '"a\\"b\\\\c"'


def test_bind_line_is_read_back_by_a_zone_parser_as_the_same_value() -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 400
    entry = DnsEntry(host="sel._domainkey.example.com", rdtype="TXT", value=value, zone="example.com")
    line = entry.bind_line()
    assert line.startswith('sel._domainkey.example.com. 3600 IN TXT "v=DKIM1; k=rsa; p=AAA')
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, entry.presentation_value)
    assert b"".join(rdata.strings).decode() == value  # type: ignore[attr-defined]
    assert len(rdata.strings) == 2  # type: ignore[attr-defined]
    assert entry.relative_host == "sel._domainkey"


def test_cname_entry() -> None:
    entry = DnsEntry(
        host="k2._domainkey.example.com", rdtype="CNAME", value="dkim2.mcsv.net", zone="example.com"
    )
    assert entry.bind_line() == "k2._domainkey.example.com. 3600 IN CNAME dkim2.mcsv.net."
    assert entry.strings == ("dkim2.mcsv.net",)


def test_apex_host_is_at_sign() -> None:
    assert (
        DnsEntry(host="example.com", rdtype="TXT", value="v=spf1 -all", zone="example.com").relative_host
        == "@"
    )


@pytest.mark.parametrize(
    "values", [["v=spf1 -all"], ["v=spf1 " + "ip4:192.0.2.1 " * 30 + "-all", "google-site-verification=abc"]]
)
def test_answer_size_matches_the_wire_size_dnspython_builds(values: list[str]) -> None:
    host = "example.com"
    query = dns.message.make_query(host, "TXT", use_edns=False)
    response = dns.message.make_response(query)
    rrset = dns.rrset.from_text_list(host + ".", 300, "IN", "TXT", [quote_txt(v) for v in values])
    response.answer.append(rrset)
    assert txt_answer_size(host, values) == len(response.to_wire())


def test_classic_limit_is_512() -> None:
    assert CLASSIC_UDP_LIMIT == 512
