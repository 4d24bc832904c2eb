"""SMTP TLS reports (RFC 8460) parsed: the real samples with their known totals, and hostile input
refused with a specific reason."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from handlers.errors import ReportError
from handlers.reports.archive import ReportInvalid, ReportRefused
from handlers.reports.tls_report import (
    TlsReportLimits,
    looks_like_tls_report,
    parse_tls_report,
    read_tls_reports,
    unpack_tls_report,
)
from tests.testdata import TESTDATA

CRY_INC = TESTDATA / "dmarc-reports-cry-inc" / "smtp-tls-reports"
PARSEDMARC = TESTDATA / "dmarc-reports-parsedmarc" / "smtp_tls"
SAMPLES = sorted([*CRY_INC.iterdir(), *PARSEDMARC.iterdir()])
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)

# Every sample: (policy domains, total successful, total failed, failure details, day).
EXPECTED = {
    "google.json": (["foo-bar.io"], 1, 0, 0, "2025-05-22"),
    "microsoft.json": (["random.net"], 4, 0, 0, "2025-05-23"),
    "no-contact.json": (["server.com"], 1, 0, 0, "2026-01-11"),
    "no-policy.json": (["foo-bar.io"], 1, 0, 0, "2025-03-27"),
    "no_ip_and_mx.json": (["xxxxxxxx.xx"], 0, 3, 1, "2025-06-14"),
    "rfc-example.json": (["company-y.example"], 5326, 303, 3, "2016-04-01"),
    "google.com_smtp_tls_report.eml": (["cardinalhealth.ca"], None, None, None, "2024-09-03"),
    "mail.ru.json": (["example.com"], 0, 1, 2, "2024-02-22"),
    "rfc8460.json": (["company-y.example"], 5326, 303, 3, "2016-04-01"),
    "smtp_tls.json": (["example.com"], 0, 3, 2, "2024-01-09"),
}


def report(**changes: Any) -> dict[str, Any]:
    """The RFC 8460 §4.4 example as a dict, with `changes` applied at the top level."""
    data: dict[str, Any] = json.loads((CRY_INC / "rfc-example.json").read_bytes())
    data.update(changes)
    return data


def encoded(data: object) -> bytes:
    return json.dumps(data).encode()


def test_the_shared_sets_hold_the_samples_the_tests_expect() -> None:
    assert sorted(p.name for p in SAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_recognised_and_parsed_with_its_known_totals(path: Path) -> None:
    data = path.read_bytes()
    assert looks_like_tls_report(data, path.name)
    [parsed] = read_tls_reports(data, now=NOW)
    domains, successful, failed, details, day = EXPECTED[path.name]
    assert parsed.domains == domains
    assert parsed.day == day
    if successful is not None:
        assert sum(p.successful for p in parsed.policies) == successful
        assert sum(p.failed for p in parsed.policies) == failed
        assert sum(len(p.failures) for p in parsed.policies) == details


def test_the_rfc_example_keeps_each_failure_detail() -> None:
    [parsed] = read_tls_reports((CRY_INC / "rfc-example.json").read_bytes(), now=NOW)
    assert parsed.organization == "Company-X"
    assert parsed.report_id == "5065427c-23d3-47ca-b6e0-946ea0e8c4be"
    [policy] = parsed.policies
    assert policy.policy_type == "sts"
    assert policy.mx_hosts == ("*.mail.company-y.example",)
    assert [(f.result_type, f.receiving_mx, f.sending_ip, f.sessions) for f in policy.failures] == [
        ("certificate-expired", "mx1.mail.company-y.example", "2001:db8:abcd:12::1", 100),
        ("starttls-not-supported", "mx2.mail.company-y.example", "2001:db8:abcd:13::1", 200),
        ("validation-failure", "mx-backup.mail.company-y.example", "198.51.100.62", 3),
    ]
    assert policy.failures[2].failure_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"


def test_an_mx_host_written_as_one_string_is_read_as_a_list() -> None:
    [parsed] = read_tls_reports((PARSEDMARC / "rfc8460.json").read_bytes(), now=NOW)
    assert parsed.policies[0].mx_hosts == ("*.mail.company-y.example",)


def test_details_counting_more_than_the_summary_keep_the_summary_and_say_so() -> None:
    [parsed] = read_tls_reports((PARSEDMARC / "mail.ru.json").read_bytes(), now=NOW)
    assert parsed.policies[0].failed == 1
    assert [w for w in parsed.warnings if "the totals use the summary" in w]


def test_the_google_mail_carries_a_gzipped_report() -> None:
    data = (PARSEDMARC / "google.com_smtp_tls_report.eml").read_bytes()
    [document] = unpack_tls_report(data)
    assert json.loads(document)["organization-name"] == "Google Inc."
    [parsed] = read_tls_reports(data, now=NOW)
    assert parsed.report_id == "2024-09-03T00:00:00Z_cardinalhealth.ca"


def test_gzipped_json_and_a_json_attachment_are_read() -> None:
    data = (CRY_INC / "rfc-example.json").read_bytes()
    assert looks_like_tls_report(gzip.compress(data))
    assert read_tls_reports(gzip.compress(data), now=NOW)[0].report_id.startswith("5065427c")
    mail = (
        b"From: tlsrpt@example.net\r\nTo: r@example.com\r\nTLS-Report-Domain: company-y.example\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        b"--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    assert looks_like_tls_report(mail)
    assert read_tls_reports(mail, now=NOW)[0].policies[0].failed == 303


def test_aggregate_reports_and_ordinary_mail_are_not_taken_for_tls_reports() -> None:
    aggregate = TESTDATA / "dmarc-reports-parsedmarc" / "aggregate"
    for path in aggregate.iterdir():
        assert not looks_like_tls_report(path.read_bytes(), path.name), path.name
    assert not looks_like_tls_report(b"From: a@example.com\r\nSubject: hi\r\n\r\nTLS-Report-Domain: x\r\n")


def refused(data: bytes, limits: TlsReportLimits | None = None) -> ReportError:
    with pytest.raises(ReportError) as caught:
        read_tls_reports(data, limits or TlsReportLimits(), now=NOW)
    return caught.value


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"{not json", "the report is not valid JSON"),
        (b'{"a": "\xff"}', "the report is not UTF-8"),
        (b"[1, 2]", "the report is a JSON list, not an object"),
        (encoded([report()]), "the report is a JSON list, not an object"),
        (encoded(report(**{"report-id": None})), "the report has no report-id (RFC 8460 §4.4 requires it)"),
        (encoded(report(**{"report-id": 7})), "the report.report-id is a JSON number, not a string"),
        (encoded(report(**{"date-range": None})), "the report has no date-range object"),
        (
            encoded(report(**{"date-range": {"start-datetime": "yesterday", "end-datetime": "today"}})),
            "date-range.start-datetime is 'yesterday', not an RFC 3339 date-time",
        ),
        (
            encoded(
                report(
                    **{
                        "date-range": {
                            "start-datetime": "2024-01-02T00:00:00Z",
                            "end-datetime": "2024-01-01T00:00:00Z",
                        }
                    }
                )
            ),
            "date-range ends (2024-01-01 00:00) before it starts (2024-01-02 00:00)",
        ),
        (
            encoded(
                report(
                    **{
                        "date-range": {
                            "start-datetime": "1999-01-01T00:00:00Z",
                            "end-datetime": "1999-01-01T23:59:59Z",
                        }
                    }
                )
            ),
            "date-range begins 1999-01-01, before 2012",
        ),
        (
            encoded(
                report(
                    **{
                        "date-range": {
                            "start-datetime": "2027-01-01T00:00:00Z",
                            "end-datetime": "2027-01-01T23:59:59Z",
                        }
                    }
                )
            ),
            "date-range ends 2027-01-01 23:59 UTC, more than a day in the future",
        ),
        (encoded(report(policies=[])), "the report has no policies list"),
        (encoded(report(policies=[7])), "policies[0] is a JSON number, not an object"),
        (b'{"a": ' * 30 + b"1" + b"}" * 30, "the JSON nests more than 20 levels deep"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "the report has a number no report carries"),
    ],
)
def test_broken_or_hostile_input_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    assert reason in str(refused(data))


def policy_with(summary: dict[str, Any] | None = None, /, **policy: str) -> bytes:
    base = report()
    entry = base["policies"][0]
    entry["policy"].update(policy)
    if summary is not None:
        entry["summary"] = summary
    return encoded(base)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (policy_with(**{"policy-type": "smime"}), "policies[0].policy-type is “smime”; RFC 8460 §4.4 allows"),
        (policy_with(**{"policy-domain": "not a domain"}), "policies[0].policy-domain is not a domain name"),
        (
            policy_with({"total-successful-session-count": -1, "total-failure-session-count": 0}),
            "total-successful-session-count is -1: a session count is never negative",
        ),
        (
            policy_with({"total-successful-session-count": True, "total-failure-session-count": 0}),
            "total-successful-session-count is 'True', not a whole number of sessions",
        ),
        (
            policy_with({"total-successful-session-count": "12", "total-failure-session-count": 0}),
            "not a whole number of sessions",
        ),
        (
            policy_with({"total-successful-session-count": 2**40, "total-failure-session-count": 0}),
            "no receiver reports that many sessions",
        ),
    ],
)
def test_a_bad_policy_refuses_the_report_naming_where(data: bytes, reason: str) -> None:
    assert reason in str(refused(data))


def test_too_many_policies_or_failure_details_are_refused_before_they_are_read() -> None:
    many = report(policies=report()["policies"] * 5)
    error = refused(encoded(many), TlsReportLimits(max_policies=4))
    assert isinstance(error, ReportRefused) and error.cap == "max_policies"
    assert "the report has 5 policies; at most 4 are accepted" in str(error)
    error = refused(encoded(report()), TlsReportLimits(max_failure_details=2))
    assert isinstance(error, ReportRefused) and error.cap == "max_failure_details"


def test_size_caps_refuse_the_input_and_the_inflated_json() -> None:
    data = encoded(report())
    error = refused(data, TlsReportLimits(max_input_bytes=100))
    assert isinstance(error, ReportRefused) and error.cap == "max_input_bytes"
    error = refused(data, TlsReportLimits(max_json_bytes=100))
    assert isinstance(error, ReportRefused) and error.cap == "max_json_bytes"
    error = refused(gzip.compress(data), TlsReportLimits(max_json_bytes=100))
    assert isinstance(error, ReportRefused) and error.cap == "max_json_bytes"


def test_a_gzip_bomb_is_refused_by_the_ratio_after_inflating_little() -> None:
    # 50 MB of blanks inside a report: about 50 KB of gzip, a ratio near 1,000.
    bomb = gzip.compress(b'{"organization-name": "x"' + b" " * (50 * 1024 * 1024) + b"}")
    error = refused(bomb)
    assert isinstance(error, ReportRefused) and error.cap == "max_ratio"
    assert "inflates more than 100 times its size" in str(error)


def test_a_truncated_or_corrupt_gzip_is_named() -> None:
    data = gzip.compress(encoded(report()))
    assert "the gzip data is truncated" in str(refused(data[: len(data) // 2]))
    assert "the gzip data is corrupt" in str(refused(data[:10] + b"\x00" * 50 + data[60:]))
    assert "does not hold a TLS report" in str(refused(gzip.compress(b"<feedback/>")))


def test_a_bad_failure_detail_field_is_left_out_with_a_warning() -> None:
    base = report()
    base["policies"][0]["failure-details"][0]["sending-mta-ip"] = "not-an-ip"
    base["policies"][0]["failure-details"][1]["result-type"] = "<b>bold</b>"
    parsed = parse_tls_report(encoded(base), now=NOW)
    failures = parsed.policies[0].failures
    assert [f.result_type for f in failures] == ["certificate-expired", "validation-failure"]
    assert failures[0].sending_ip is None
    assert any("is not an IP address" in w for w in parsed.warnings)
    assert any("is not a result type: skipped" in w for w in parsed.warnings)


def test_strings_are_clipped_and_made_printable() -> None:
    parsed = parse_tls_report(
        encoded(report(**{"organization-name": "Evil\n<!channel>" + "x" * 400})), now=NOW
    )
    assert "\n" not in parsed.organization
    assert len(parsed.organization) == 255


def test_refusals_are_report_errors_of_the_right_kind() -> None:
    assert isinstance(refused(b"{not json"), ReportInvalid)


def test_nesting_hidden_behind_closing_brackets_in_a_string_is_still_refused() -> None:
    hidden = b'{"a": "' + b"]" * 100_000 + b'", "b": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = refused(hidden)
    assert "nests more than 20 levels deep" in str(error) or "not valid JSON" in str(error)


def test_a_large_gzipped_report_inflates_in_steps_and_keeps_every_detail() -> None:
    base = report()
    details = [
        {
            "result-type": "validation-failure",
            "sending-mta-ip": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
            "receiving-mx-hostname": f"mx{n % 7}.mail.company-y.example",
            "failed-session-count": 1,
        }
        for n in range(10_000)
    ]
    base["policies"][0]["failure-details"] = details
    base["policies"][0]["summary"]["total-failure-session-count"] = 10_000
    data = gzip.compress(encoded(base))
    assert len(encoded(base)) > 20 * 64 * 1024  # many inflation steps
    [parsed] = read_tls_reports(data, now=NOW)
    assert len(parsed.policies[0].failures) == 10_000
    assert sum(f.sessions for f in parsed.policies[0].failures) == parsed.policies[0].failed == 10_000
