"""Aggregate (rua) report parsing: every third-party sample, the broken ones, and hostile input."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import re
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from handlers.reports.aggregate import (
    AggregateReport,
    ReportError,
    ReportInvalid,
    ReportLimits,
    ReportRefused,
    iter_records,
    parse_report,
    parse_report_file,
    unpack_report,
)
from tests.testdata import TESTDATA

PARSEDMARC = TESTDATA / "dmarc-reports-parsedmarc"
CRY_INC = TESTDATA / "dmarc-reports-cry-inc" / "dmarc-reports"
MAIL_DMARC = TESTDATA / "dmarc-reports-mail-dmarc"
OPENDMARC = TESTDATA / "dmarc-opendmarc" / "aggregate_reports"
REPORT_SUFFIXES = (".xml", ".gz", ".zip", ".eml")


def _samples() -> list[Path]:
    folders = [
        PARSEDMARC / "aggregate",
        PARSEDMARC / "aggregate_invalid",
        PARSEDMARC / "extract_report",
        CRY_INC,
        MAIL_DMARC,
        OPENDMARC,
    ]
    found = [p for folder in folders for p in sorted(folder.iterdir()) if p.name.endswith(REPORT_SUFFIXES)]
    return [*found, PARSEDMARC / "empty.xml"]


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name[:50]}"


# The broken samples (testdata/README.md) and the clear error each must give instead of a crash.
BROKEN: dict[str, tuple[type[ReportError], str]] = {
    "invalid_utf_8.xml": (ReportInvalid, "not valid UTF-8 at line 31: byte 0x91"),
    "invalid_xml.xml": (ReportInvalid, "not well-formed at line 5, column 17"),
    # OpenDMARC's deliberately malformed report: `<header_from>example.com<foo</header_from>`.
    "bad.com!example.com!1337140800!1337227200.xml": (ReportInvalid, "not well-formed at line 6"),
    "empty.xml": (ReportInvalid, "the file is empty"),
    # The RFC's example report is dated 1979, years before DMARC reporting existed.
    "rfc9990-sample.xml": (ReportRefused, "begins 1979-08-07, before 2012, when DMARC reporting began"),
}

# Record counts from opendmarc_cases.json ("aggregate_report_parse": 754, 50 and 254 records).
OPENDMARC_RECORDS = {
    "good.com!example.com!1337270400!1337356799.xml": 754,
    "163.com!example.com!1337270400!1337356799.20120518163.xml": 50,
    "yeah.net!example.com!1337270400!1337356799.20120518.xml": 254,
}


def _parse(folder: str, name: str) -> AggregateReport:
    return parse_report((PARSEDMARC / folder / name).read_bytes())


def _xml_of(path: Path) -> bytes:
    """The plain XML of a sample, unpacked by the standard library alone (an independent oracle)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.infolist()[0])
    return data


@pytest.mark.parametrize("path", _samples(), ids=_id)
def test_every_sample_parses_or_fails_clearly(path: Path) -> None:
    data = path.read_bytes()
    if path.name in BROKEN:
        error, message = BROKEN[path.name]
        with pytest.raises(error, match=re.escape(message)):
            parse_report_file(data, path.name)
        return
    reports = parse_report_file(data, path.name)
    assert len(reports) == 1
    report = reports[0]
    assert report.records, "every sample has records"
    assert report.report_id and report.policy.domain
    assert report.date_begin <= report.date_end
    assert report.skipped_records == 0 and not report.truncated
    if path.suffix != ".eml":
        # Cross-check against the raw text: one Record per <record>, and the sum of <count>s.
        xml = _xml_of(path)
        assert len(report.records) == len(re.findall(rb"<record>", xml))
        assert report.message_count == sum(int(n) for n in re.findall(rb"<count>\s*(\d+)\s*</count>", xml))
    if path.name in OPENDMARC_RECORDS:
        assert len(report.records) == OPENDMARC_RECORDS[path.name]


def test_every_aggregate_sample_listed_in_expected_json_is_covered() -> None:
    expected = json.loads((PARSEDMARC / "expected.json").read_text())
    covered = {p.name for p in _samples()}
    for folder in ("aggregate", "aggregate_invalid", "extract_report"):
        for name in expected["files"][folder]:
            assert name in covered, name


@pytest.mark.parametrize(
    ("name", "records", "messages"),
    [
        ("mimecast-weird-gzip.eml", 1, 1),  # application/gzip body with a CRLF after the gzip stream
        ("twilight.eml", 1, 1),  # multipart with a zip attachment
        ("Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml", 1, 1),
    ],
)
def test_mail_samples(name: str, records: int, messages: int) -> None:
    (report,) = parse_report_file((PARSEDMARC / "aggregate" / name).read_bytes())
    assert (len(report.records), report.message_count) == (records, messages)


def test_borschow_mail_org_name() -> None:
    # expected.json field_expectations: report_metadata.org_name == "google.com"
    name = "Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml"
    (report,) = parse_report_file((PARSEDMARC / "aggregate" / name).read_bytes())
    assert report.org_name == "google.com"
    assert report.policy.domain == "borschow.com"


def test_rfc9990_sample_fields_match_expected_json() -> None:
    expected = json.loads((PARSEDMARC / "expected.json").read_text())["field_expectations"]
    want = expected["aggregate/rfc9990-sample.xml"]
    # The sample is dated 1979, which is refused; its fields are read with a plausible range.
    sample = (PARSEDMARC / "aggregate" / "rfc9990-sample.xml").read_bytes()
    report = parse_report(
        sample.replace(b">302832000<", b">1700000000<").replace(b">302918399<", b">1700086399<")
    )
    meta = want["report_metadata"]
    assert (report.org_name, report.email, report.report_id, report.generator) == (
        meta["org_name"],
        meta["org_email"],
        meta["report_id"],
        meta["generator"],
    )
    pol, pp = report.policy, want["policy_published"]
    assert (pol.domain, pol.p, pol.sp, pol.np, pol.testing, pol.discovery_method) == (
        pp["domain"],
        pp["p"],
        pp["sp"],
        pp["np"],
        pp["testing"],
        pp["discovery_method"],
    )
    assert (pol.adkim, pol.aspf, pol.pct, pol.fo) == ("r", "r", None, None)  # defaults when absent
    (record,) = report.records
    (want_record,) = want["records"]
    assert str(record.source_ip) == want_record["source_ip"]
    assert record.count == want_record["count"]
    evaluated = want_record["policy_evaluated"]
    assert (record.disposition, record.dkim_eval, record.spf_eval) == (
        evaluated["disposition"],
        evaluated["dkim"],
        evaluated["spf"],
    )
    (dkim,) = record.dkim
    assert (dkim.domain, dkim.selector, dkim.result) == ("example.com", "abc123", "pass")
    (spf,) = record.spf
    assert (spf.domain, spf.scope, spf.result) == ("example.com", None, "fail")
    assert report.version == "1.0"


def test_policy_fields_match_expected_json() -> None:
    expected = json.loads((PARSEDMARC / "expected.json").read_text())["field_expectations"]
    old = _parse("aggregate", "example.net!example.com!1529366400!1529452799.xml")
    want = expected["aggregate/example.net!example.com!1529366400!1529452799.xml"]["policy_published"]
    assert (str(old.policy.pct), old.policy.fo, old.policy.np, old.policy.testing) == (
        want["pct"],
        want["fo"],
        want["np"],
        want["testing"],
    )
    assert old.generator is None
    new_name = "rfc9990-example.net!example.com!1700000000!1700086399.xml"
    new = parse_report((PARSEDMARC / "aggregate" / new_name).read_bytes())
    want = expected[f"aggregate/{new_name}"]["policy_published"]
    assert (new.policy.np, new.policy.testing, new.policy.discovery_method) == (
        want["np"],
        want["testing"],
        want["discovery_method"],
    )
    assert new.records[1].reasons[0].type == "other"
    assert new.records[1].reasons[0].comment == "sender not authorized"
    assert new.records[0].dmarc_pass and not new.records[1].dmarc_pass


def test_org_name_that_is_a_domain_is_lower_cased() -> None:
    # expected.json: "outlook.com (normalised from \"Outlook.com\")"
    path = PARSEDMARC / "aggregate" / "protection.outlook.com!example.com!1711756800!1711843200.xml"
    assert parse_report(path.read_bytes()).org_name == "outlook.com"


def test_upper_cased_results_are_normalised() -> None:
    report = _parse("aggregate_invalid", "report_with_upper_cased_pass.xml")
    (record,) = report.records
    assert (record.disposition, record.dkim_eval, record.spf_eval) == ("none", "pass", "pass")
    assert record.dkim[0].result == "pass" and record.spf[0].result == "pass"
    assert report.org_name == "example.com"  # "example.com " trimmed


def test_dates_are_utc_and_netease_float_timestamps_accepted() -> None:
    report = parse_report(
        (OPENDMARC / "163.com!example.com!1337270400!1337356799.20120518163.xml").read_bytes()
    )
    assert report.date_begin == datetime.fromtimestamp(1337270400, tz=UTC)
    assert report.date_end == datetime.fromtimestamp(1337356799, tz=UTC)
    assert report.date_begin.tzinfo is UTC


def test_unclosed_wrapper_around_a_complete_report_parses_whole() -> None:
    # ikea.com opens an <xs:schema> it never closes; the <feedback> inside is complete.
    report = _parse("aggregate", "ikea.com!example.de!1538690400!1538776800.xml")
    assert not report.truncated
    assert report.records[0].spf[0].scope == "helo"


@pytest.mark.parametrize(
    "paths",
    [
        [MAIL_DMARC / "test_dmarc.xml", MAIL_DMARC / "test_dmarc.xml.gz", MAIL_DMARC / "test_dmarc.xml.zip"],
        [PARSEDMARC / "extract_report" / f"nice-input.xml{ext}" for ext in ("", ".gz", ".zip")],
    ],
    ids=["mail-dmarc", "parsedmarc-extract_report"],
)
def test_archives_give_the_same_report_as_the_plain_xml(paths: list[Path]) -> None:
    plain, *packed = paths
    want = parse_report(plain.read_bytes())
    for path in packed:
        (docs,) = [unpack_report(path.read_bytes(), path.name)]
        assert docs == [plain.read_bytes()]  # unpacked byte for byte
        (got,) = parse_report_file(path.read_bytes(), path.name)
        assert got == want
        assert got.key == want.key


def test_format_is_told_by_content_not_name() -> None:
    gz = (MAIL_DMARC / "test_dmarc.xml.gz").read_bytes()
    assert unpack_report(gz, "report.xml") == [(MAIL_DMARC / "test_dmarc.xml").read_bytes()]
    assert unpack_report(gz, None) == unpack_report(gz, "x.zip")


def test_changed_input_differs() -> None:
    nice = parse_report((PARSEDMARC / "extract_report" / "nice-input.xml").read_bytes())
    changed = parse_report((PARSEDMARC / "extract_report" / "changed-input.xml").read_bytes())
    assert nice != changed


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (PARSEDMARC / "failure" / "dmarc_ruf_report_linkedin.eml", "carries no aggregate report"),
        (PARSEDMARC / "smtp_tls" / "smtp_tls.json", "JSON (an SMTP TLS report?)"),
        (PARSEDMARC / "smtp_tls" / "google.com_smtp_tls_report.eml", "JSON (an SMTP TLS report?)"),
        (MAIL_DMARC / "rua-schema.xsd", "no <feedback> element"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_other_reports_are_not_taken_for_aggregate_ones(path: Path, message: str) -> None:
    with pytest.raises(ReportInvalid, match=re.escape(message)):
        parse_report_file(path.read_bytes(), path.name)


# --- hand-made reports ---------------------------------------------------------------------------

NS_9990 = "urn:ietf:params:xml:ns:dmarc-2.0"


def _record_xml(i: int, ip: str | None = None, count: str = "1") -> str:
    ip = ip or f"192.0.{(i >> 8) & 255}.{i & 255}"
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>"
        "</policy_evaluated></row><identifiers><header_from>Example.COM</header_from></identifiers>"
        "<auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result>"
        "</dkim><spf><domain>example.com</domain><scope>mfrom</scope><result>fail</result></spf>"
        "</auth_results></record>"
    )


def _report_xml(
    records: str = "",
    *,
    ns: str | None = None,
    org: str = "Reporter",
    report_id: str = "r-1",
    begin: str = "1700000000",
    end: str = "1700086399",
    domain: str = "example.com",
    prolog: str = "",
) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<feedback{xmlns}>'
        f"<report_metadata><org_name>{org}</org_name><email>dmarc@reporter.example</email>"
        f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range>"
        f"</report_metadata><policy_published><domain>{domain}</domain><p>reject</p></policy_published>"
        f"{records}</feedback>"
    ).encode()


def test_rfc9990_namespace_and_no_namespace_give_the_same_report() -> None:
    records = "".join(_record_xml(i) for i in range(3))
    assert parse_report(_report_xml(records, ns=NS_9990)) == parse_report(_report_xml(records))


def test_prefixed_draft_namespace() -> None:
    xml = (
        b"<ns1:feedback xmlns:ns1='http://dmarc.org/dmarc-xml/0.1'><report_metadata><org_name>AOL</org_name>"
        b"<report_id>x</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range>"
        b"</report_metadata>"
        b"<policy_published><domain>example.com</domain></policy_published>"
        + _record_xml(1).encode()
        + b"</ns1:feedback>"
    )
    assert len(parse_report(xml).records) == 1


def test_record_values_are_normalised_and_typed() -> None:
    (record,) = parse_report(_report_xml(_record_xml(0, ip=" ::ffff:192.0.2.7 ", count=" 42 "))).records
    assert record.source_ip == ipaddress.IPv4Address("192.0.2.7")  # IPv4-mapped IPv6 is the IPv4 sender
    assert record.count == 42
    assert record.header_from == "example.com"
    assert record.dkim[0].selector == "s1"


def test_declared_encoding_other_than_utf8() -> None:
    xml = _report_xml(_record_xml(0), org="Soci\xe9t\xe9").replace(b"UTF-8", b"windows-1252")
    xml = xml.decode().encode("windows-1252")
    assert parse_report(xml).org_name == "Soci\xe9t\xe9"


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("klingon", "declares an encoding we cannot read"),
        ("Shift_JIS", "multi-byte encodings are not supported"),
    ],
)
def test_undecodable_declared_encoding(encoding: str, message: str) -> None:
    with pytest.raises(ReportInvalid, match=message):
        parse_report(_report_xml(_record_xml(0)).replace(b"UTF-8", encoding.encode()))


def test_utf16_report() -> None:
    xml = _report_xml(_record_xml(0)).replace(b"UTF-8", b"UTF-16").decode().encode("utf-16")
    assert len(parse_report_file(xml)[0].records) == 1


def test_strings_from_strangers_are_bounded() -> None:
    long = "a" * 100_000
    xml = _report_xml(_record_xml(0).replace("s1", long), org=long, report_id=long)
    report = parse_report(xml)
    assert len(report.org_name or "") == 255 and len(report.report_id) == 255
    assert len(report.records[0].dkim[0].selector or "") == 255
    short = parse_report(xml, ReportLimits(max_text=10))
    assert short.report_id == "a" * 10


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (_record_xml(0, ip="108r.166.27.220"), "source_ip '108r.166.27.220' is not an IP address"),
        (_record_xml(0, count="many"), "count 'many' is not a message count"),
        (_record_xml(0, count="-3"), "count '-3' is not a message count"),
        (_record_xml(0, count="\u00b2"), "count '\u00b2' is not a message count"),  # "²".isdigit() is True
        ("<record><identifiers/></record>", "no <row>"),
    ],
)
def test_a_bad_record_is_skipped_and_said(record: str, why: str) -> None:
    report = parse_report(_report_xml(_record_xml(1) + record + _record_xml(2)))
    assert len(report.records) == 2
    assert report.skipped_records == 1
    assert report.warnings == (f"record 2 skipped: {why}",)


@pytest.mark.parametrize("count", [2**32, 2**63 - 1])
def test_a_count_over_32_bits_refuses_the_whole_report(count: int) -> None:
    # No receiver counts that many messages from one source: the report's other numbers are not
    # to be believed either, so it is refused, not stored without the record.
    with pytest.raises(ReportRefused) as caught:
        parse_report(_report_xml(_record_xml(1) + _record_xml(0, count=str(count)) + _record_xml(2)))
    assert str(caught.value) == (
        f"record 2: count {count} does not fit in 32 bits; "
        "at most 4,294,967,295 messages per record are accepted"
    )


def test_missing_optional_elements_are_tolerated() -> None:
    record = "<record><row><source_ip>2001:db8::1</source_ip><count>3</count></row></record>"
    (rec,) = parse_report(_report_xml(record)).records
    assert (rec.disposition, rec.dkim_eval, rec.header_from, rec.dkim, rec.spf) == (None, None, None, (), ())


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (_report_xml(report_id=""), "missing required element(s): report_metadata/report_id"),
        (_report_xml(domain=""), "missing required element(s): policy_published/domain"),
        (_report_xml(begin=""), "report_metadata/date_range/begin"),
        (_report_xml(end="tomorrow"), "report_metadata/date_range/end is not a Unix timestamp: 'tomorrow'"),
        (_report_xml(begin="1700086400", end="1700000000"), "begins (2023-11-15 22:13) after it ends"),
        (b"<feedback><record/></feedback>", "report_metadata/report_id, report_metadata/date_range/begin"),
        (b"<html><body>hello</body></html>", "no <feedback> element"),
        (b"  \n", "the file is empty"),
        (b"<feedback><report_metadata>", "the XML ends early"),
    ],
)
def test_invalid_reports_name_the_problem(xml: bytes, message: str) -> None:
    with pytest.raises(ReportInvalid, match=re.escape(message)):
        parse_report(xml)


def test_truncated_report_keeps_complete_records_and_says_so() -> None:
    good = (OPENDMARC / "good.com!example.com!1337270400!1337356799.xml").read_bytes()
    cut = good[: len(good) // 2]
    report = parse_report(cut)
    assert report.truncated
    whole = parse_report(good)
    assert 0 < len(report.records) < len(whole.records)
    assert report.records == whole.records[: len(report.records)]  # only complete records, in order
    # Cut inside the metadata: nothing usable, so an error that says both things.
    with pytest.raises(ReportInvalid, match=r"ends early.*missing required element"):
        parse_report(good[:200])


def test_key_is_the_same_for_a_resent_report() -> None:
    first = parse_report(_report_xml(_record_xml(0)))
    again = parse_report(_report_xml(_record_xml(0) + _record_xml(1)))
    other = parse_report(_report_xml(_record_xml(0), report_id="r-2"))
    assert first.key == again.key != other.key
    begin, end = datetime.fromtimestamp(1700000000, tz=UTC), datetime.fromtimestamp(1700086399, tz=UTC)
    assert first.key == ("dmarc@reporter.example", "r-1", "example.com", begin, end)


# --- hostile input -------------------------------------------------------------------------------


def _laugh(i: int) -> str:
    return f"&lol{i - 1 if i > 1 else ''};"


BILLION_LAUGHS = (
    '<!DOCTYPE feedback [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{_laugh(i) * 10}">' for i in range(1, 10))
    + "]>"
)


@pytest.mark.parametrize(
    ("prolog", "body", "cap"),
    [
        (BILLION_LAUGHS, "&lol9;", "xml_dtd"),
        ('<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/dmarc.dtd">', "", "xml_dtd"),
        ('<!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;", "xml_dtd"),
        ('<!DOCTYPE feedback [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]>', "", "xml_dtd"),
        ("<!DOCTYPE feedback>", "", "xml_dtd"),
    ],
    ids=["billion-laughs", "external-dtd", "external-entity", "parameter-entity", "bare-doctype"],
)
def test_dtds_and_entities_are_refused(prolog: str, body: str, cap: str) -> None:
    xml = _report_xml(_record_xml(0).replace("s1", body), prolog=prolog)
    with pytest.raises(ReportRefused, match=r"entit.* refused") as caught:
        parse_report_file(xml)
    assert caught.value.cap == cap


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """200 MB of zeros deflated: about 200 kB, over the 200 MiB default decompressed cap."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("r.xml", "w") as member:
        member.write(b"<feedback>")
        zeros = b"\0" * (1 << 20)
        for _ in range(210):
            member.write(zeros)
    return buffer.getvalue()


@pytest.mark.slow
def test_zip_bomb_is_refused_without_inflating_it_all(zip_bomb: bytes) -> None:
    assert len(zip_bomb) < 1_000_000
    small = ReportLimits(max_xml_bytes=5 * 1024 * 1024)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(
            ReportRefused, match=r"once decompressed, is larger than 5 MB, the most accepted"
        ) as caught:
            unpack_report(zip_bomb, "bomb.zip", small)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.cap == "max_xml_bytes"
    assert time.perf_counter() - started < 2.0
    assert peak < 20 * 1024 * 1024  # stopped near the cap: nowhere near 200 MB held
    with pytest.raises(ReportRefused, match=r"once decompressed, is larger than 200 MB"):
        unpack_report(zip_bomb)  # the default cap holds too


@pytest.mark.slow
def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"<feedback>" + b"\0" * (50 << 20), compresslevel=9)
    with pytest.raises(ReportRefused, match=r"once decompressed, is larger than 1 MB") as caught:
        unpack_report(bomb, None, ReportLimits(max_xml_bytes=1 << 20))
    assert caught.value.cap == "max_xml_bytes"


def test_zip_members_are_capped() -> None:
    archive = _zip({f"r{i}.xml": _report_xml(report_id=f"r{i}") for i in range(11)})
    with pytest.raises(ReportRefused, match=r"has 11 files; at most 10 are accepted"):
        unpack_report(archive)
    two = _zip({"a.xml": _report_xml(report_id="a"), "README": b"hello", "b.xml": _report_xml(report_id="b")})
    assert [r.report_id for r in parse_report_file(two)] == ["a", "b"]


def test_input_size_is_capped() -> None:
    with pytest.raises(ReportRefused, match=r"the file is larger than 1,024 bytes \(1,025 bytes\)"):
        unpack_report(b"<" + b" " * 1024, None, ReportLimits(max_input_bytes=1024))


def _mail(attachments: list[tuple[bytes, str, str]]) -> bytes:
    message = EmailMessage()
    message["From"] = "dmarc@reporter.example"
    message["To"] = "rua@example.com"
    message["Subject"] = "Report domain: example.com"
    message.set_content("A DMARC aggregate report is attached.")
    for data, subtype, name in attachments:
        message.add_attachment(data, maintype="application", subtype=subtype, filename=name)
    return message.as_bytes()


def test_mail_with_each_kind_of_attachment() -> None:
    xml = _report_xml(_record_xml(0) + _record_xml(1))
    mail = _mail(
        [
            (xml, "xml", "a.xml"),
            (gzip.compress(xml), "gzip", "a.xml.gz"),
            (_zip({"a.xml": xml}), "zip", "a.zip"),
            (b"%PDF-1.4 not a report", "pdf", "terms.pdf"),
        ]
    )
    reports = parse_report_file(mail, "report.eml")
    assert len(reports) == 3
    assert reports[0] == reports[1] == reports[2] == parse_report(xml)


def test_mail_attachments_are_capped() -> None:
    xml = _report_xml()
    mail = _mail([(gzip.compress(xml), "gzip", f"{i}.xml.gz") for i in range(11)])
    with pytest.raises(ReportRefused, match=r"11 attachments; at most 10 are accepted"):
        unpack_report(mail)


def test_record_count_is_capped() -> None:
    xml = _report_xml("".join(_record_xml(i) for i in range(11)))
    assert len(parse_report(xml, ReportLimits(max_records=11)).records) == 11
    with pytest.raises(ReportRefused, match=r"more than 10 records, the most accepted") as caught:
        parse_report(xml, ReportLimits(max_records=10))
    assert caught.value.cap == "max_records"


def test_one_huge_record_is_refused() -> None:
    record = _record_xml(0).replace("</auth_results>", "<x/>" * 20_000 + "</auth_results>")
    with pytest.raises(ReportRefused, match=r"holds more than [0-9,]+ elements"):
        parse_report(_report_xml(record))


def test_zip_member_count_is_read_before_the_directory_is_parsed() -> None:
    archive = bytearray(_zip({"a.xml": _report_xml()}))
    eocd = archive.rfind(b"PK\x05\x06")
    archive[eocd + 10 : eocd + 12] = (60_000).to_bytes(2, "little")  # claims 60,000 members
    with pytest.raises(ReportRefused, match=r"has 60,000 files; at most"):
        unpack_report(bytes(archive))


def test_deeply_nested_xml_is_refused() -> None:
    nest = "<x>" * 10_000 + "</x>" * 10_000
    with pytest.raises(ReportRefused, match=r"more than 32 deep"):
        parse_report(_report_xml(_record_xml(0).replace("s1", nest)))


@pytest.mark.slow
def test_junk_before_feedback_is_not_kept() -> None:
    junk = "<j/>" * 200_000
    xml = f"<wrap>{junk}".encode() + _report_xml(_record_xml(0)).split(b"?>", 1)[1] + b"</wrap>"
    tracemalloc.start()
    try:
        report = parse_report(xml)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(report.records) == 1
    assert peak < 5 * 1024 * 1024, peak  # 200,000 retained elements would take tens of MB


@pytest.mark.slow
def test_deeply_nested_mail_is_refused() -> None:
    mail = b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
    for i in range(1, 5000):
        mail += b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i - 1, i)
    with pytest.raises(ReportRefused, match=r"nests MIME parts more than 10 deep") as caught:
        unpack_report(mail)
    assert caught.value.cap == "max_mime_depth"
    shallow = _mail([(gzip.compress(_report_xml()), "gzip", "r.xml.gz")])
    inner = shallow.split(b"\n\n", 1)[1]
    for _ in range(12):  # 12 levels: under the recursion limit, over our cap
        boundary = b"x%d" % len(inner)
        inner = (
            b'Content-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\n\n--'
            + boundary
            + b"\n"
            + b"Content-Type: message/rfc822\n\n"
            + b"From: a@example.com\n"
            + inner
            + b"\n--"
            + boundary
            + b"--\n"
        )
    with pytest.raises(ReportRefused, match=r"nests MIME parts more than"):
        unpack_report(b"From: a@example.com\n" + inner)


def test_not_a_report_at_all() -> None:
    with pytest.raises(ReportInvalid, match=r"not a report: expected XML, gzip, zip or a mail message"):
        unpack_report(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(ReportInvalid, match=r"gzip data is truncated"):
        unpack_report(gzip.compress(_report_xml())[:30])
    with pytest.raises(ReportInvalid, match=r"not a readable zip archive"):
        unpack_report(b"PK\x03\x04" + b"\0" * 40)


# --- streaming -----------------------------------------------------------------------------------


class _GeneratedReport(io.RawIOBase):
    """A report of `n` records produced on demand, so the input itself costs no memory."""

    def __init__(self, n: int) -> None:
        self._chunks = self._generate(n)
        self._buffer = b""

    @staticmethod
    def _generate(n: int) -> Iterator[bytes]:
        head = _report_xml()
        yield head.removesuffix(b"</feedback>")
        for start in range(0, n, 1000):
            yield "".join(_record_xml(i) for i in range(start, min(n, start + 1000))).encode()
        yield b"</feedback>"

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _peak_while_streaming(n: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        stream = io.BufferedReader(_GeneratedReport(n))
        seen = sum(1 for _ in iter_records(stream, ReportLimits(max_records=10**7)))
        return seen, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_streaming_memory_does_not_grow_with_records() -> None:
    small_seen, small_peak = _peak_while_streaming(1_000)
    big_seen, big_peak = _peak_while_streaming(20_000)
    assert (small_seen, big_seen) == (1_000, 20_000)
    assert big_peak < small_peak * 1.5 + 256 * 1024, (small_peak, big_peak)


def test_iter_records_checks_the_header_at_the_end() -> None:
    records = iter_records(b"<feedback>" + _record_xml(0).encode() + b"</feedback>")
    assert next(records).count == 1
    with pytest.raises(ReportInvalid, match="missing required element"):
        next(records)


def test_report_is_hashable_and_frozen() -> None:
    report = parse_report(_report_xml(_record_xml(0)))
    assert isinstance(report, AggregateReport)
    assert hash(report) == hash(parse_report(_report_xml(_record_xml(0))))
    with pytest.raises(AttributeError):
        report.report_id = "x"  # type: ignore[misc]


def test_compact_json_is_named_as_a_tls_report_not_a_mail() -> None:
    """Google sends SMTP TLS reports as compact JSON, whose start looks like a header field."""
    compact = b'{"organization-name":"Google Inc.","date-range":{}}'
    with pytest.raises(ReportInvalid, match="JSON"):
        unpack_report(compact, "google.json")


def test_a_refusal_says_the_size_in_plain_words_not_a_setting_name() -> None:
    with pytest.raises(ReportRefused) as caught:
        unpack_report(b"<" + b" " * (25 * 1024 * 1024), None)
    assert str(caught.value).startswith("the file is larger than 25 MB")
    assert "cap" not in str(caught.value) and "max_" not in str(caught.value)


def test_the_largest_32_bit_count_is_kept() -> None:
    (record,) = parse_report(_report_xml(_record_xml(0, count=str(2**32 - 1)))).records
    assert record.count == 2**32 - 1


@pytest.mark.parametrize(
    ("begin", "end", "why"),
    [
        ("1325376000", str(int(time.time()) + 3 * 86400), "more than a day in the future: refused"),
        ("1700000000", "95617584000", "ends 5000-01-01 00:00 UTC, more than a day in the future"),
        ("1000000000", "1000086399", "begins 2001-09-09, before 2012, when DMARC reporting began"),
        ("0", "1700086399", "begins 1970-01-01, before 2012"),
    ],
    # ids of their own: one end is computed from the clock, and xdist workers must collect the same ids
    ids=["ends-3-days-ahead", "ends-in-5000", "begins-2001", "begins-1970"],
)
def test_a_report_dated_where_no_report_can_be_is_refused(begin: str, end: str, why: str) -> None:
    with pytest.raises(ReportRefused, match=re.escape(why)):
        parse_report(_report_xml(_record_xml(0), begin=begin, end=end))


def test_a_report_ending_within_a_day_ahead_is_kept() -> None:
    end = int(time.time()) + 12 * 3600  # the reporter's clock or time zone may run ahead
    report = parse_report(_report_xml(_record_xml(0), begin=str(end - 86400), end=str(end)))
    assert report.date_end.timestamp() == end
