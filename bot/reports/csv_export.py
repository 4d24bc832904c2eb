"""`dmarcbot report DOMAIN --csv FILE`: the stored report rows in parsedmarc's aggregate CSV columns.

The columns and their order are parsedmarc's (`parsed_aggregate_reports_to_csv_rows`), so the file
loads into what parsedmarc users already use. A column dmarcbot does not keep (the reporter's XML
schema, extra contact, the source's country and ASN, envelope_to, override comments) is left
empty. One row is one stored row: records of a report with the same source, outcome and
identifiers are stored together, with their counts summed, so a row may stand for several.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

from bot.reports.summary import ReportSummary
from bot.store.reports import ReportStore
from handlers.dns.psl import registrable_domain

# parsedmarc 11's aggregate CSV header, in its order.
PARSEDMARC_COLUMNS = (
    "xml_schema",
    "org_name",
    "org_email",
    "org_extra_contact_info",
    "report_id",
    "begin_date",
    "end_date",
    "normalized_timespan",
    "errors",
    "domain",
    "adkim",
    "aspf",
    "p",
    "sp",
    "np",
    "pct",
    "fo",
    "testing",
    "discovery_method",
    "source_ip_address",
    "source_country",
    "source_reverse_dns",
    "source_base_domain",
    "source_name",
    "source_type",
    "source_asn",
    "source_as_name",
    "source_as_domain",
    "count",
    "spf_aligned",
    "dkim_aligned",
    "dmarc_aligned",
    "disposition",
    "policy_override_reasons",
    "policy_override_comments",
    "envelope_from",
    "header_from",
    "envelope_to",
    "dkim_domains",
    "dkim_selectors",
    "dkim_results",
    "spf_domains",
    "spf_scopes",
    "spf_results",
)


def _date(iso: str | None) -> str:
    # parsedmarc writes "YYYY-MM-DD HH:MM:SS" (UTC)
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S") if iso else ""


def write_csv(reports: ReportStore, team_id: str, summary: ReportSummary, out: IO[str]) -> int:
    """Write the rows of `summary`'s window to `out`; return how many rows were written."""
    senders: Mapping[str, str | None] = {s.ip: s.sender.name for s in summary.sources}
    writer = csv.DictWriter(out, PARSEDMARC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    written = 0
    for row in reports.record_rows(team_id, summary.domain, summary.first, summary.last):
        ip = row["source_ip"]
        ptr = summary.names.get(ip)
        email = row["org_email"] or (row["reporter"] if "@" in (row["reporter"] or "") else None)
        values: dict[str, Any] = {
            "org_name": row["org_name"],
            "org_email": email,
            "report_id": row["report_id"],
            "begin_date": _date(row["date_begin"]),
            "end_date": _date(row["date_end"]),
            "domain": row["domain"],
            "adkim": row["adkim"],
            "aspf": row["aspf"],
            "p": row["p"],
            "sp": row["sp"],
            "pct": row["pct"],
            "fo": row["fo"],
            "source_ip_address": ip,
            "source_reverse_dns": ptr,
            "source_base_domain": registrable_domain(ptr) if ptr else None,
            "source_name": senders.get(ip),
            "count": row["messages"],
            "spf_aligned": bool(row["spf_aligned"]),
            "dkim_aligned": bool(row["dkim_aligned"]),
            "dmarc_aligned": bool(row["dmarc_pass"]),
            "disposition": row["disposition"],
            "policy_override_reasons": row["override_reasons"],
            "envelope_from": row["envelope_from"],
            "header_from": row["header_from"],
            "dkim_domains": row["dkim_domains"],
            "dkim_selectors": row["dkim_selectors"],
            "dkim_results": row["dkim_results"],
            "spf_domains": row["spf_domains"],
            "spf_scopes": row["spf_scopes"],
            "spf_results": row["spf_results"],
        }
        writer.writerow({k: ("" if v is None else v) for k, v in values.items()})
        written += 1
    return written
