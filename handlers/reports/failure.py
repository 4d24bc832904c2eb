"""Read a DMARC failure report (RFC 6591 AFRF, RFC 9991): the feedback fields and the failed message.

A failure report is a `multipart/report; report-type=feedback-report` (RFC 6591 §3, RFC 5965 §2)
whose second part, `message/feedback-report`, says `Feedback-Type: auth-failure` and whose third
part is the failed message (`message/rfc822`) or its headers alone (`text/rfc822-headers`).
Anyone can mail the report address, so the same bounds as aggregate reports apply (the input's
size, MIME depth and part count), every field kept is clipped, and what is kept of the failed
message is only the headers a DMARC verdict reads, with the local parts of addresses redacted
unless the caller asks to keep them: failure reports carry other people's mail.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from handlers.reports.archive import (
    DEFAULT_LIMITS,
    ReportInvalid,
    ReportLimits,
    over_limit,
    read_mail,
)

# The headers a verdict reads (From, DKIM, SPF's evidence, the receiver's results) and the two
# that identify the message. Nothing else of the failed message is ever stored: not Subject, not
# To, never the body.
KEPT_HEADERS = (
    "from",
    "date",
    "message-id",
    "dkim-signature",
    "authentication-results",
    "received-spf",
    "received",
    "return-path",
)
MAX_KEPT_FIELDS = 60  # a long Received chain has 20; the rest is not needed for a verdict
MAX_KEPT_BYTES = 64 * 1024  # the stored header block of one report

_HEADERS_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
# local-part@domain as it appears in From, Return-Path, Received "for <…>", smtp.mailfrom=…
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@(?=[A-Za-z0-9\[])")
_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class FailureReport:
    """One failure report: who sent it, what its feedback part says, and the failed message."""

    reporter: str  # the report's own From domain (who sent the report), or "unknown"
    source_ip: str | None  # Source-IP: the connecting IP of the failed message
    original_mail_from: str | None  # Original-Mail-From: its MAIL FROM ("" for the null sender)
    arrival_date: datetime | None  # Arrival-Date, in UTC
    reported_domain: str | None  # Reported-Domain, as written (clipped)
    auth_failure: str | None  # Auth-Failure: dmarc, spf, dkim…
    delivery_result: str | None  # Delivery-Result: delivered, spam, policy, reject…
    original: bytes  # the failed message (headers, and its body when the report carried it)
    headers_only: bool  # the third part was text/rfc822-headers
    digest: str  # SHA-256 of the report as received: the same report ingested twice is one

    def kept_headers(self, keep_addresses: bool = False) -> str:
        """The only part of the failed message that is stored: see `kept_headers`."""
        return kept_headers(self.original, keep_addresses)


def looks_like_failure_report(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> bool:
    """True when `data` is a mail that declares itself a feedback report or carries a
    `message/feedback-report` part: read by `parse_failure_report`, never as an aggregate report.
    Cheap: the mail's own headers and the first bytes of the rest are looked at, nothing parsed."""
    if len(data) > limits.max_input_bytes:
        return False
    head = data[: 256 * 1024].lower()
    # An SMTP TLS report is a multipart/report too (report-type=tlsrpt, RFC 8460 §5.3): not ours.
    return b"message/feedback-report" in head or (b"multipart/report" in head and b"tlsrpt" not in head)


def parse_failure_report(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> FailureReport:
    """The failure report in `data`, or a ReportError saying why it is not one we can read."""
    if len(data) > limits.max_input_bytes:
        raise over_limit("the file is", "max_input_bytes", len(data), limits.max_input_bytes)
    report, parts = read_mail(data, limits)
    feedback_part = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if feedback_part is None:
        raise ReportInvalid(
            "it is a report mail without the machine-readable message/feedback-report part RFC 6591 §3 "
            "requires (a plain-text notice): there is no Source-IP or failed message to explain"
        )
    fields = _feedback_fields(feedback_part)
    feedback_type = (fields.get("feedback-type") or "").strip().lower()
    if feedback_type != "auth-failure":
        raise ReportInvalid(
            f"it is a feedback report of type “{feedback_type[:40] or 'none'}”, not a DMARC failure "
            "report (Feedback-Type: auth-failure, RFC 6591 §3)"
        )
    original_part = next((p for p in parts if p.get_content_type() in _HEADERS_TYPES), None)
    if original_part is None:
        raise ReportInvalid(
            "the failure report carries no copy of the failed message (no message/rfc822 or "
            "text/rfc822-headers part, RFC 6591 §3), so there is nothing to explain"
        )
    original = _original_bytes(original_part)
    if not original.strip():
        raise ReportInvalid("the failure report's copy of the failed message is empty")
    return FailureReport(
        reporter=_reporter(report.get("from")),
        source_ip=_ip(fields.get("source-ip")),
        original_mail_from=_mail_from(fields.get("original-mail-from")),
        arrival_date=_date(fields.get("arrival-date") or fields.get("received-date")),
        reported_domain=_clip(fields.get("reported-domain"), limits.max_text),
        auth_failure=_clip(fields.get("auth-failure"), 40),
        delivery_result=_clip(fields.get("delivery-result"), 40),
        original=original,
        headers_only=original_part.get_content_type() != "message/rfc822",
        digest=hashlib.sha256(data).hexdigest(),
    )


def kept_headers(original: bytes, keep_addresses: bool = False) -> str:
    """The failed message's KEPT_HEADERS, unfolded, one per line, in their order; local parts of
    addresses replaced by `*` unless `keep_addresses`. Message-ID is kept as is: it identifies
    the message, and its left side is not a mailbox."""
    header_block = re.split(rb"\r?\n\r?\n", original, maxsplit=1)[0]
    kept: list[str] = []
    size = 0
    starts = list(_FIELD.finditer(header_block))
    for index, match in enumerate(starts):
        name = match.group(1).decode("ascii").lower()
        if name not in KEPT_HEADERS:
            continue
        end = starts[index + 1].start() if index + 1 < len(starts) else len(header_block)
        text = header_block[match.start() : end].decode("utf-8", "replace")
        line = re.sub(r"\s*\r?\n[ \t]+", " ", text).strip()
        if not keep_addresses and name != "message-id":
            line = redact(line)
        size += len(line) + 1
        if len(kept) >= MAX_KEPT_FIELDS or size > MAX_KEPT_BYTES:
            break
        kept.append(line)
    return "\n".join(kept)


def redact(text: str) -> str:
    """`text` with the local part of every address replaced by `*` (`*@example.com`)."""
    return _ADDRESS.sub("*@", text)


# -- pieces -------------------------------------------------------------------------------------


def _payload_bytes(part: Message) -> bytes:
    """A part's content as bytes, its transfer encoding undone. The stdlib parses every message/*
    part as a nested message, also a base64-encoded one (Netease sends its feedback part so)."""
    payload = part.get_payload()
    encoding = str(part.get("content-transfer-encoding") or "").strip().lower()
    if isinstance(payload, list):
        inner = payload[0] if payload and isinstance(payload[0], Message) else None
        if inner is None:
            return b""
        if encoding == "base64":
            text = inner.as_bytes(policy=_VERBATIM) if inner.keys() else str(inner.get_payload()).encode()
            try:
                return base64.b64decode(re.sub(rb"\s+", b"", text))
            except (binascii.Error, ValueError):
                raise ReportInvalid("a part of the failure report is not valid base64") from None
        return inner.as_bytes(policy=_VERBATIM)
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


# CRLF lines and no refolding: the failed message's header bytes are what its DKIM signatures
# cover (RFC 6376 §3.4), so they are written back as they arrived.
_VERBATIM = email.policy.compat32.clone(linesep="\r\n", max_line_length=0)


def _feedback_fields(part: Message) -> dict[str, str]:
    text = _payload_bytes(part)[: 64 * 1024]
    fields: dict[str, str] = {}
    for name, value in email.message_from_bytes(text, policy=email.policy.compat32).items():
        fields.setdefault(name.lower(), re.sub(r"\s+", " ", str(value)).strip())
    return fields


def _original_bytes(part: Message) -> bytes:
    raw = _payload_bytes(part)
    if part.get_content_type() != "message/rfc822":
        # Headers alone: end them with the blank line a header block has.
        return raw.rstrip(b"\r\n") + b"\r\n"
    return raw


def _reporter(value: str | None) -> str:
    domain = (value or "").rpartition("@")[2].strip(" <>\"'\t").lower()
    return domain[:255] or "unknown"


def _ip(value: str | None) -> str | None:
    text = (value or "").strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text.removeprefix("IPv6:").removeprefix("ipv6:")))
    except ValueError:
        return None


def _mail_from(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().strip("<>").strip()[:320]


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None
