"""Build aggregate report XML for tests: dated where a test needs it, with exactly the records given."""

from __future__ import annotations

import gzip
import io
import ipaddress
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from bot.store.reports import ReportStore
from bot.store.stores import Stores, open_stores


@dataclass
class Row:
    """One <record>: `count` messages from `ip`; dkim/spf are the policy_evaluated results."""

    ip: str
    count: int
    dkim: str = "pass"
    spf: str = "pass"
    header_from: str = "example.com"
    dkim_domain: str | None = "example.com"
    selector: str | None = "s1"
    dkim_result: str | None = None  # auth_results; defaults to the evaluated result
    spf_domain: str = "example.com"
    spf_result: str | None = None
    disposition: str = "none"
    reasons: tuple[str, ...] = ()  # policy override reason types
    envelope_from: str | None = None


def report_xml(
    rows: list[Row],
    *,
    day: date | None = None,
    domain: str = "example.com",
    reporter: str = "google.com",
    report_id: str = "r1",
    email: str | None = None,
    namespace: bool = False,
) -> bytes:
    """An RFC 7489 (or, with namespace=True, RFC 9990) aggregate report for one UTC day."""
    day = day or datetime.now(UTC).date()
    begin = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    end = begin + 86399
    records = [record_xml(row) for row in rows]
    ns = ' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"' if namespace else ""
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?><feedback{ns}><version>1.0</version>'
        f"<report_metadata><org_name>{reporter}</org_name>"
        f"<email>{email or 'noreply-dmarc@' + reporter}</email><report_id>{report_id}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p>"
        f"</policy_published>{''.join(records)}</feedback>"
    )
    return xml.encode()


def record_xml(row: Row) -> str:
    """One <record> of a report."""
    dkim_auth = ""
    if row.dkim_domain:
        dkim_auth = (
            f"<dkim><domain>{row.dkim_domain}</domain>"
            + (f"<selector>{row.selector}</selector>" if row.selector else "")
            + f"<result>{row.dkim_result or row.dkim}</result></dkim>"
        )
    return (
        f"<record><row><source_ip>{row.ip}</source_ip><count>{row.count}</count>"
        f"<policy_evaluated><disposition>{row.disposition}</disposition><dkim>{row.dkim}</dkim>"
        f"<spf>{row.spf}</spf>"
        + "".join(f"<reason><type>{reason}</type></reason>" for reason in row.reasons)
        + "</policy_evaluated></row>"
        "<identifiers>"
        + (f"<envelope_from>{row.envelope_from}</envelope_from>" if row.envelope_from else "")
        + f"<header_from>{row.header_from}</header_from></identifiers>"
        f"<auth_results>{dkim_auth}<spf><domain>{row.spf_domain}</domain><scope>mfrom</scope>"
        f"<result>{row.spf_result or row.spf}</result></spf></auth_results></record>"
    )


def write_large_zip(path: Path, members: int, records: int) -> Path:
    """A zip of `members` reports of `records` distinct sources each, written as a stream (the
    test's memory does not grow with it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in range(members):
            head, tail = report_xml([], report_id=f"large-{member}").split(b"</feedback>")
            with archive.open(f"large-{member}.xml", "w") as out:
                out.write(head)
                for start in range(0, records, 10_000):
                    rows = (
                        Row(str(ipaddress.IPv4Address(0x0B000000 + i)), 1 + i % 7)
                        for i in range(start, min(records, start + 10_000))
                    )
                    out.write("".join(record_xml(row) for row in rows).encode())
                out.write(b"</feedback>" + tail)
    return path


def days_ago(n: int) -> date:
    """The UTC date `n` days before today."""
    return datetime.now(UTC).date() - timedelta(days=n)


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def zipped(data: bytes, name: str = "report.xml") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def mail_with(
    attachment: bytes, filename: str = "report.xml.gz", subject: str = "Report domain: example.com"
) -> bytes:
    """A report mail as reporters send it: a short text part and the report attached."""
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(attachment))}@google.com>"
    message.set_content("This is an aggregate report.")
    message.add_attachment(attachment, maintype="application", subtype="gzip", filename=filename)
    return message.as_bytes()


def zip_bomb(size: int) -> bytes:
    """A zip holding `size` bytes of well-formed XML, an open <feedback> and blanks (compresses
    about 1000:1): nothing refuses it before the decompressed-size cap does."""
    return zipped(b"<feedback>" + b" " * size, "bomb.xml")


def open_reports(db_path: Path) -> tuple[Stores, ReportStore]:
    """A migrated database file and the report store over it."""
    stores = open_stores(str(db_path))
    return stores, stores.reports
