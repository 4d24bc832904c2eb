"""Build SMTP TLS reports (RFC 8460 §4.4 JSON) for tests: a chosen day, domain and sessions."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

Failure = tuple[str, str | None, str | None, int]  # (result type, receiving MX, sending IP, sessions)


def policy(
    successful: int,
    failures: list[Failure] = (),  # type: ignore[assignment]
    domain: str = "example.com",
    kind: str = "sts",
) -> dict[str, Any]:
    """One policy entry: its summary counts the failures' sessions."""
    details = []
    for result_type, mx, ip, sessions in failures:
        detail: dict[str, Any] = {"result-type": result_type, "failed-session-count": sessions}
        if mx:
            detail["receiving-mx-hostname"] = mx
        if ip:
            detail["sending-mta-ip"] = ip
        details.append(detail)
    return {
        "policy": {"policy-type": kind, "policy-domain": domain, "mx-host": [f"mx.{domain}"]},
        "summary": {
            "total-successful-session-count": successful,
            "total-failure-session-count": sum(f[3] for f in failures),
        },
        "failure-details": details,
    }


def tls_report(
    day: date,
    policies: list[dict[str, Any]],
    report_id: str | None = None,
    org: str = "Google Inc.",
) -> bytes:
    """A report covering the UTC day `day`."""
    return json.dumps(
        {
            "organization-name": org,
            "date-range": {
                "start-datetime": f"{day.isoformat()}T00:00:00Z",
                "end-datetime": f"{day.isoformat()}T23:59:59Z",
            },
            "contact-info": "smtp-tls-reporting@example.net",
            "report-id": report_id or f"{day.isoformat()}_{org}",
            "policies": policies,
        }
    ).encode()


def tls_mail(
    report: bytes, domain: str = "example.com", subject: str = "TLS report", gzipped: bool = True
) -> bytes:
    """A report mail as Google sends one (RFC 8460 §5.3): multipart/report, report-type=tlsrpt."""
    import base64
    import gzip

    kind = "application/tlsrpt+gzip" if gzipped else "application/tlsrpt+json"
    body = base64.encodebytes(gzip.compress(report) if gzipped else report)
    return (
        (
            f"From: noreply-smtp-tls-reporting@google.com\r\nTo: tls@example.com\r\nSubject: {subject}\r\n"
            f"TLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: google.com\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=tlsrpt; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report.\r\n"
            f'--b1\r\nContent-Type: {kind}\r\nContent-Disposition: attachment; filename="r.json.gz"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + body
        + b"\r\n--b1--\r\n"
    )
