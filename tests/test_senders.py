"""Senders named and sorted from generated reports: SPF ranges, PTR names and the domain's SPF
served by NSD, DKIM d= in the reports; `report --json` and `report --csv` read end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.reports.csv_export import PARSEDMARC_COLUMNS
from bot.reports.summary import build_summary
from bot.store.database import apply_migrations
from bot.store.migrations import MIGRATIONS
from bot.store.stores import open_stores
from handlers.reports.senders import sender_map
from tests.aggregate_xml import Row, days_ago, report_xml
from tests.dnstest import NsdServer, make_zone


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("DMARCBOT_DB", str(path))
    monkeypatch.delenv("DMARCBOT_NAMESERVERS", raising=False)
    return path


def serve_senders(nsd: NsdServer) -> None:
    """example.test's SPF names SendGrid (a catalog provider) and a partner's include; two hosts
    in 192.0.2.0/24 have PTR names (Mailchimp's, a forwarding service's)."""
    nsd.set_zone(
        "example.test",
        make_zone(
            "example.test", [("@", "TXT", "v=spf1 include:sendgrid.net include:_spf.partner.test ~all")]
        ),
    )
    nsd.set_zone("sendgrid.net", make_zone("sendgrid.net", [("@", "TXT", "v=spf1 ip4:203.0.113.0/25 ~all")]))
    nsd.set_zone(
        "partner.test", make_zone("partner.test", [("_spf", "TXT", "v=spf1 ip4:198.51.100.0/28 -all")])
    )
    nsd.set_zone(
        "2.0.192.in-addr.arpa",
        make_zone(
            "2.0.192.in-addr.arpa", [("7", "PTR", "o7.mail.mcsv.net."), ("9", "PTR", "mx1.forwardemail.net.")]
        ),
    )


ROWS = [
    # SendGrid: in SPF through include:sendgrid.net, envelope aligned: compliant.
    Row("203.0.113.5", 400, dkim="fail", dkim_domain="sendgrid.net", dkim_result="pass",
        header_from="example.test", spf_domain="example.test", selector="s1"),
    # A partner in SPF, but its envelope is its own bounce domain and it does not sign: misconfigured.
    Row("198.51.100.3", 120, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="bounces.partner.test", spf_result="pass", envelope_from="bounces.partner.test"),
    # Mailchimp (PTR mcsv.net, DKIM d=mcsv.net): not in SPF, not aligned: misconfigured, with a fix.
    Row("192.0.2.7", 300, dkim="fail", spf="fail", dkim_domain="mcsv.net", dkim_result="pass", selector="k1",
        header_from="news.example.test", spf_domain="mail.mcsv.net", spf_result="pass"),
    # A forwarding service (PTR forwardemail.net): forwarded.
    Row("192.0.2.9", 60, dkim="fail", spf="fail", dkim_domain="example.test", dkim_result="fail",
        header_from="example.test", spf_domain="example.test", spf_result="softfail",
        disposition="quarantine"),
    # Unnamed, unsigned, failing: unknown (possibly spoofing).
    Row("192.0.2.66", 90, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="example.test", spf_result="fail", disposition="reject"),
    # Unnamed, a list reported by the receiver: forwarded at the source.
    Row("192.0.2.20", 10, dkim="fail", spf="fail", dkim_domain="example.test", dkim_result="fail",
        header_from="example.test", spf_domain="lists.example.org", spf_result="pass",
        reasons=("mailing_list",)),
]  # fmt: skip


def ingest(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    path.write_bytes(report_xml(ROWS, day=days_ago(1), domain="example.test", reporter="google.com"))
    assert main(["ingest", "--team", "T1", str(path)]) == 0


def test_each_source_is_named_and_sorted(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_senders(nsd)
    ingest(tmp_path)
    capsys.readouterr()
    assert main(["report", "example.test", "--json", "--team", "T1", "--nameserver", nsd.address]) == 0
    data = json.loads(capsys.readouterr().out)
    by_ip = {s["ip"]: s for s in data["sources"]}
    seen = {ip: (s["sender"], s["sender_source"], s["category"], s["reason"]) for ip, s in by_ip.items()}
    assert seen == {
        "203.0.113.5": ("SendGrid", "spf_include", "compliant", "passes DMARC through aligned SPF"),
        "198.51.100.3": (
            "_spf.partner.test",
            "spf_include",
            "misconfigured",
            "SPF passes for bounces.partner.test, not aligned; no DKIM signature",
        ),
        "192.0.2.7": ("Mailchimp", "dkim_domain", "misconfigured", "not in SPF; DKIM d=mcsv.net not aligned"),
        "192.0.2.9": (
            "ForwardEmail.net",
            "reverse_dns",
            "forwarded",
            "all its messages fail DMARC: ForwardEmail.net is a forwarding service",
        ),
        "192.0.2.66": (
            None,
            None,
            "unknown",
            "no sender name; all its messages fail DMARC (not in SPF; no DKIM signature): possibly spoofing, "
            "which the policy should stop",
        ),
        "192.0.2.20": (
            None,
            None,
            "forwarded",
            "all its messages fail DMARC: the receiver reported mailing_list",
        ),
    }
    senders = data["senders"]
    assert [(s["name"], s["category"]) for s in senders] == [
        ("Mailchimp", "misconfigured"),
        ("_spf.partner.test", "misconfigured"),
        (None, "unknown"),
        ("ForwardEmail.net", "forwarded"),
        ("SendGrid", "compliant"),
    ]
    mailchimp = senders[0]
    assert mailchimp["messages"] == 300 and mailchimp["dmarc_pass_rate"] == 0.0
    assert mailchimp["ips"] == ["192.0.2.7"]
    assert mailchimp["fix"] == {
        "finding": "dkim.key_missing",
        "title": "Set up Mailchimp's DKIM CNAME records for example.test, so its mail is signed "
        "d=example.test",
    }
    assert senders[1]["fix"] is None  # not in the catalog: the reason says what is missing
    assert senders[2]["ips"] == ["192.0.2.66", "192.0.2.20"] and senders[2]["messages"] == 100
    assert data["dispositions"] == {"none": 830, "quarantine": 60, "reject": 90}
    assert data["override_reasons"] == {"mailing_list": 10}
    assert data["from_domains"] == [
        {"domain": "example.test", "messages": 680, "dmarc_pass_rate": 0.5882},
        {"domain": "news.example.test", "messages": 300, "dmarc_pass_rate": 0.0},
    ]
    assert data["reporters"] == {"google.com": 980}


def test_a_sender_whose_envelope_is_ours_gets_the_include_fix(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nsd.set_zone("example.test", make_zone("example.test", [("@", "TXT", "v=spf1 ip4:192.0.2.1 -all")]))
    nsd.set_zone(
        "2.0.192.in-addr.arpa", make_zone("2.0.192.in-addr.arpa", [("30", "PTR", "o1.ptr.sendgrid.net.")])
    )
    rows = [
        Row("192.0.2.30", 50, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
            spf_domain="example.test", spf_result="fail"),
    ]  # fmt: skip
    path = tmp_path / "r.xml"
    path.write_bytes(report_xml(rows, day=days_ago(1), domain="example.test"))
    assert main(["ingest", "--team", "T1", str(path)]) == 0
    capsys.readouterr()
    assert main(["report", "example.test", "--json", "--team", "T1", "--nameserver", nsd.address]) == 0
    (sender,) = json.loads(capsys.readouterr().out)["senders"]
    assert (sender["name"], sender["category"], sender["reason"]) == (
        "SendGrid",
        "misconfigured",
        "not in SPF; no DKIM signature",
    )
    assert sender["fix"] == {
        "finding": "spf.sender_missing",
        "title": "Add include:sendgrid.net (SendGrid) to the SPF record of example.test",
    }


def test_a_dns_outage_never_says_not_in_spf(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # No zone for example.test: NSD refuses, an outage. SPF is unknown, so nothing is "not in SPF".
    path = tmp_path / "r.xml"
    rows = [Row("192.0.2.66", 5, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
                spf_domain="example.test", spf_result="fail")]  # fmt: skip
    path.write_bytes(report_xml(rows, day=days_ago(1), domain="example.test"))
    assert main(["ingest", "--team", "T1", str(path)]) == 0
    capsys.readouterr()
    assert main(["report", "example.test", "--json", "--team", "T1", "--nameserver", nsd.address]) == 0
    (source,) = json.loads(capsys.readouterr().out)["sources"]
    assert source["category"] == "unknown"
    assert "not in SPF" not in source["reason"] and "SPF fail for example.test" in source["reason"]


def test_csv_has_parsedmarcs_columns_and_one_row_per_record(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_senders(nsd)
    ingest(tmp_path)
    out = tmp_path / "out.csv"
    assert (
        main(["report", "example.test", "--csv", str(out), "--team", "T1", "--nameserver", nsd.address]) == 0
    )
    with out.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == PARSEDMARC_COLUMNS
        rows = list(reader)
    assert len(rows) == len(ROWS)
    mailchimp = next(r for r in rows if r["source_ip_address"] == "192.0.2.7")
    assert {k: mailchimp[k] for k in (
        "org_name", "report_id", "domain", "p", "adkim", "count", "spf_aligned", "dkim_aligned",
        "dmarc_aligned", "disposition", "header_from", "dkim_domains", "dkim_selectors", "dkim_results",
        "spf_domains", "spf_scopes", "spf_results", "source_reverse_dns", "source_base_domain", "source_name",
    )} == {
        "org_name": "google.com", "report_id": "r1", "domain": "example.test", "p": "none", "adkim": "r",
        "count": "300", "spf_aligned": "False", "dkim_aligned": "False", "dmarc_aligned": "False",
        "disposition": "none", "header_from": "news.example.test", "dkim_domains": "mcsv.net",
        "dkim_selectors": "k1", "dkim_results": "pass", "spf_domains": "mail.mcsv.net", "spf_scopes": "mfrom",
        "spf_results": "pass", "source_reverse_dns": "o7.mail.mcsv.net", "source_base_domain": "mcsv.net",
        "source_name": "Mailchimp",
    }  # fmt: skip
    listed = next(r for r in rows if r["source_ip_address"] == "192.0.2.20")
    assert listed["policy_override_reasons"] == "mailing_list"
    assert mailchimp["begin_date"] == f"{days_ago(1).isoformat()} 00:00:00"


def test_reports_stored_before_the_details_migration_keep_working(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    apply_migrations(path, MIGRATIONS[:9])
    stores = open_stores(path)  # applies the rest: the details columns
    day = days_ago(1).isoformat()
    with stores.database.write() as db:
        db.execute(
            "INSERT INTO agg_reports (team_id, reporter, report_id, domain, date_begin, date_end, day, "
            "messages, records, ingested_at) "
            "VALUES ('T1', 'google.com', 'old', 'example.com', ?, ?, ?, 7, 1, ?)",
            [f"{day}T00:00:00+00:00", f"{day}T23:59:59+00:00", day, f"{day}T23:59:59+00:00"],
        )
        db.execute(
            "INSERT INTO agg_rows (team_id, report_pk, domain, day, source_ip, messages, dmarc_pass, "
            "spf_aligned, dkim_aligned, spf_why, dkim_why) VALUES ('T1', 1, 'example.com', ?, "
            "'192.0.2.1', 7, 0, 0, 0, 'SPF fail for example.com', 'no DKIM signature')",
            [day],
        )
    summary = build_summary(stores.reports, "T1", "example.com", 7).to_json()
    assert summary["messages"] == 7 and summary["dmarc_pass_rate"] == 0.0
    assert summary["dispositions"] == {"none": 0, "quarantine": 0, "reject": 0}  # not known: counted nowhere
    (sender,) = summary["senders"]
    assert (sender["name"], sender["category"]) == (None, "unknown")


def test_the_vendored_map_names_known_services() -> None:
    assert sender_map()["mcsv.net"].name == "Intuit Mailchimp"
    assert len(sender_map()) > 30_000
