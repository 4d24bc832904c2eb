"""Read an SMTP TLS report (RFC 8460): JSON, gzipped JSON, or a mail carrying one.

Receivers send a domain's TLS reports to the `rua` of its `_smtp._tls` record (RFC 8460 §3) as
`application/tlsrpt+json` or `application/tlsrpt+gzip` (§5.3), by mail with a `TLS-Report-Domain`
header (§5.3) or by HTTPS POST. Anyone can send them, so the same bounds as aggregate reports
apply: the input's size, the decompressed size (with a ratio cap, so a small gzip bomb is refused
after inflating little), MIME depth, part and attachment counts, the number of policies and
failure details, session counts within 32 bits, dates within the years reports exist; JSON
nesting is capped before the parser sees it, and every string kept is clipped.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any

from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.limits import EARLIEST_REPORT_DATE, MAX_REPORT_FUTURE, MAX_REPORT_RECORD_COUNT
from handlers.reports.archive import (
    MiB,
    ReportInvalid,
    ReportRefused,
    over_limit,
    read_mail,
    size_words,
)

_CHUNK = 64 * 1024  # inflation step: the most the decompressed cap can be overshot by

# RFC 8460 §4.3, §4.4: the result types receivers report. Others are kept (a newer receiver may
# add some) when they are a plain token; these are the ones explained.
RESULT_TYPES = {
    "starttls-not-supported": "the MX host does not offer STARTTLS",
    "certificate-host-mismatch": "the MX host's certificate does not name it",
    "certificate-expired": "the MX host's certificate has expired",
    "certificate-not-trusted": "the MX host's certificate is not signed by a trusted CA",
    "validation-failure": "the TLS session could not be validated",
    "tlsa-invalid": "the TLSA record is invalid",
    "dnssec-invalid": "the DNSSEC signatures did not validate",
    "dane-required": "DANE was required but no valid TLSA record was found",
    "sts-policy-fetch-error": "the MTA-STS policy could not be fetched",
    "sts-policy-invalid": "the MTA-STS policy is invalid",
    "sts-webpki-invalid": "the MTA-STS policy host's certificate did not validate",
}
POLICY_TYPES = ("sts", "tlsa", "no-policy-found")  # RFC 8460 §4.3
_TOKEN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_TLSRPT_TYPES = ("application/tlsrpt+json", "application/tlsrpt+gzip")


@dataclass(frozen=True, kw_only=True)
class TlsReportLimits:
    """What one TLS report may cost us. Real reports are a few kilobytes: one policy or two, a
    handful of failure details. The defaults leave a wide margin."""

    max_input_bytes: int = 25 * MiB  # the file or mail as received, as for aggregate reports
    max_json_bytes: int = 20 * MiB  # all decompressed JSON of one input; parsed whole, so smaller
    # gzip of real JSON shrinks it 5 to 20 times; a bomb 1,000 times. Beyond a first megabyte
    # (small files compress oddly), inflating more than this ratio is refused.
    max_ratio: int = 100
    ratio_free_bytes: int = 1 * MiB
    max_attachments: int = 10
    max_policies: int = 1_000  # per report; RFC 8460 reports one per policy domain and type
    max_failure_details: int = 10_000  # per report, over all its policies
    max_session_count: int = MAX_REPORT_RECORD_COUNT  # a count fits 32 bits, as for aggregate records
    max_depth: int = 20  # JSON nesting; a report nests 5 deep
    max_text: int = 255  # every string kept is cut to this
    max_policy_strings: int = 100  # lines of a policy-string kept


DEFAULT_TLS_LIMITS = TlsReportLimits()


@dataclass(frozen=True, kw_only=True)
class TlsFailureDetail:
    """One failure-details entry (RFC 8460 §4.3): a result type and where it happened."""

    result_type: str
    sending_ip: str | None
    receiving_mx: str | None
    receiving_ip: str | None
    failure_code: str | None
    sessions: int


@dataclass(frozen=True, kw_only=True)
class TlsPolicy:
    """One policy the sender applied (`sts`, `tlsa` or `no-policy-found`) and its sessions."""

    policy_type: str
    domain: str
    policy_strings: tuple[str, ...]
    mx_hosts: tuple[str, ...]
    successful: int
    failed: int
    failures: tuple[TlsFailureDetail, ...]


@dataclass(frozen=True, kw_only=True)
class TlsReport:
    """An SMTP TLS report: who sent it, for when, and the sessions per policy."""

    organization: str
    contact: str | None
    report_id: str
    date_begin: datetime
    date_end: datetime
    policies: tuple[TlsPolicy, ...]
    warnings: tuple[str, ...] = ()

    @property
    def domains(self) -> list[str]:
        """The policy domains the report is about, in order, once each."""
        return list(dict.fromkeys(p.domain for p in self.policies))

    @property
    def day(self) -> str:
        """The UTC day its sessions are counted on: the middle of its date range, as for aggregate
        reports (RFC 8460 §4.3: ranges are normally one UTC day)."""
        middle = self.date_begin + (self.date_end - self.date_begin) / 2
        return middle.astimezone(UTC).date().isoformat()


# -- recognising one --------------------------------------------------------------------------


def mentions_tls_report_fields(data: bytes) -> bool:
    """True when a JSON file names a field every TLS report has (RFC 8460 §4.4): a shared
    `package.json` is no report to answer about."""
    head = data[: 64 * 1024]
    return any(field in head for field in (b'"organization-name"', b'"report-id"', b'"policies"'))


def looks_like_tls_report(data: bytes, filename: str | None = None) -> bool:
    """True when `data` is an SMTP TLS report: JSON, gzip holding JSON, or a mail that carries a
    `TLS-Report-Domain` header or an `application/tlsrpt+…` part. Cheap: the first bytes only."""
    head = data[: 64 * 1024]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return True
    if head[:2] == b"\x1f\x8b":
        try:
            first = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 256)
        except zlib.error:
            return bool(filename and filename.lower().endswith(".json.gz"))
        return first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    lowered = head.lower()
    if b"application/tlsrpt+" in lowered or b"report-type=tlsrpt" in lowered:
        return True
    header_block = re.split(rb"\r?\n\r?\n", lowered, maxsplit=1)[0]
    return re.search(rb"(?:^|\n)tls-report-domain[ \t]*:", header_block) is not None


# -- unpacking --------------------------------------------------------------------------------


def unpack_tls_report(data: bytes, limits: TlsReportLimits = DEFAULT_TLS_LIMITS) -> list[bytes]:
    """The JSON document(s) in a TLS report file or mail, inflated within the caps, or a ReportError."""
    if len(data) > limits.max_input_bytes:
        raise over_limit("the file is", "max_input_bytes", len(data), limits.max_input_bytes)
    if not data or data.isspace():
        raise ReportInvalid("the file is empty")
    budget = [limits.max_json_bytes]
    if data[:2] == b"\x1f\x8b":
        return [_gunzip(data, budget, limits)]
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        return [_take(data, budget, limits)]  # a list is refused by the parser, saying so
    return _from_mail(data, budget, limits)


def _take(document: bytes, budget: list[int], limits: TlsReportLimits) -> bytes:
    budget[0] -= len(document)
    if budget[0] < 0:
        raise ReportRefused(
            f"the report's JSON is larger than {size_words(limits.max_json_bytes)}, the most accepted",
            "max_json_bytes",
            len(document),
        )
    return document


def _gunzip(data: bytes, budget: list[int], limits: TlsReportLimits) -> bytes:
    # The ratio is against the compressed size: a kilobyte may inflate to a megabyte, never to a
    # gigabyte, and inflation stops at the cap, so a bomb costs at most the cap plus one step.
    cap = min(budget[0], max(limits.ratio_free_bytes, limits.max_ratio * len(data)))
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while not inflater.eof:
            # With all input taken, a call with none still returns the output zlib holds back.
            chunk = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                raise ReportInvalid("the gzip data is truncated (no end of stream)")
            out += chunk
            if len(out) > cap:
                break
    except zlib.error as exc:
        raise ReportInvalid(f"the gzip data is corrupt: {exc}") from None
    if len(out) > cap:
        if cap < budget[0]:
            raise ReportRefused(
                f"the gzip data inflates more than {limits.max_ratio} times its size "
                f"({size_words(len(data))} to over {size_words(cap)}): a real report compresses far "
                "less, refused as a decompression bomb",
                "max_ratio",
                len(out),
            )
        raise ReportRefused(
            f"the report's JSON, once decompressed, is larger than {size_words(limits.max_json_bytes)}, "
            f"the most accepted (stopped after {size_words(len(out))})",
            "max_json_bytes",
            len(out),
        )
    if not bytes(out[:64]).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        raise ReportInvalid(
            f"the gzip file does not hold a TLS report (JSON), but data starting with {bytes(out[:16])!r}"
        )
    return _take(bytes(out), budget, limits)


def _from_mail(data: bytes, budget: list[int], limits: TlsReportLimits) -> list[bytes]:
    _, parts = read_mail(data)
    candidates = [part for part in parts if _is_tls_part(part)]
    if len(candidates) > limits.max_attachments:
        count = len(candidates)
        raise over_limit("the message has", "max_attachments", count, limits.max_attachments, "attachments")
    documents = []
    for part in candidates:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload.strip():
            continue
        if payload[:2] == b"\x1f\x8b":
            documents.append(_gunzip(payload, budget, limits))
        elif payload.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            documents.append(_take(payload, budget, limits))
    if not documents:
        raise ReportInvalid(
            "the message names a TLS report but carries none (no application/tlsrpt+json or "
            "application/tlsrpt+gzip attachment, RFC 8460 §5.3)"
        )
    return documents


def _is_tls_part(part: Message) -> bool:
    if part.is_multipart():
        return False
    if part.get_content_type() in _TLSRPT_TYPES:
        return True
    name = part.get_filename() or part.get_param("name")
    return isinstance(name, str) and name.lower().endswith((".json", ".json.gz"))


# -- parsing ----------------------------------------------------------------------------------


def read_tls_reports(
    data: bytes, limits: TlsReportLimits = DEFAULT_TLS_LIMITS, now: datetime | None = None
) -> list[TlsReport]:
    """Every TLS report in a file or mail, parsed; a ReportError names the first problem."""
    return [parse_tls_report(document, limits, now) for document in unpack_tls_report(data, limits)]


def parse_tls_report(
    document: bytes, limits: TlsReportLimits = DEFAULT_TLS_LIMITS, now: datetime | None = None
) -> TlsReport:
    """One RFC 8460 §4.4 JSON report, checked and bounded, or a ReportError saying what is wrong."""
    _check_depth(document, limits.max_depth)
    try:
        root = json.loads(document.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ReportInvalid(f"the report is not UTF-8 (RFC 8460 §4.4 requires it): {exc.reason}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ReportInvalid(f"the report is not valid JSON: {str(exc)[:200]}") from None
    except ValueError as exc:  # an integer with thousands of digits
        raise ReportInvalid(f"the report has a number no report carries: {str(exc)[:120]}") from None
    if not isinstance(root, dict):
        raise ReportInvalid(f"the report is a JSON {_kind(root)}, not an object (RFC 8460 §4.4)")
    warnings: list[str] = []
    organization = _text(root, "organization-name", limits, required=True)
    report_id = _text(root, "report-id", limits, required=True)
    contact = _text(root, "contact-info", limits)
    range_ = root.get("date-range")
    if not isinstance(range_, dict):
        raise ReportInvalid("the report has no date-range object (RFC 8460 §4.4)")
    begin = _datetime(range_.get("start-datetime"), "start-datetime")
    end = _datetime(range_.get("end-datetime"), "end-datetime")
    _refuse_implausible_dates(begin, end, now)
    raw_policies = root.get("policies")
    if not isinstance(raw_policies, list) or not raw_policies:
        raise ReportInvalid("the report has no policies list (RFC 8460 §4.4): there are no sessions to count")
    if len(raw_policies) > limits.max_policies:
        raise over_limit("the report has", "max_policies", len(raw_policies), limits.max_policies, "policies")
    details = sum(
        len(p.get("failure-details") or [])
        for p in raw_policies
        if isinstance(p, dict) and _is_list_or_none(p)
    )
    if details > limits.max_failure_details:
        raise over_limit(
            "the report has", "max_failure_details", details, limits.max_failure_details, "failure details"
        )
    policies = tuple(_policy(raw, n, limits, warnings) for n, raw in enumerate(raw_policies))
    return TlsReport(
        organization=organization or "unknown",
        contact=contact,
        report_id=report_id or "",
        date_begin=begin,
        date_end=end,
        policies=policies,
        warnings=tuple(warnings[:20]),
    )


def _is_list_or_none(policy: dict[str, Any]) -> bool:
    return isinstance(policy.get("failure-details"), (list, type(None)))


def _check_depth(document: bytes, max_depth: int) -> None:
    # json.loads recurses once per level: a stranger's 100,000 brackets would exhaust the stack
    # before any check of ours ran. Brackets inside strings count too: harmless, as no real report
    # nests near the cap. A string of closing brackets could hide some nesting from this count
    # (the depth never goes below 0, so it hides at most what the string holds); json.loads'
    # own RecursionError, caught by the caller, is the backstop.
    depth = deepest = 0
    for byte in document.translate(None, delete=bytes(set(range(256)) - set(b"[]{}"))):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise ReportRefused(
                    f"the JSON nests more than {max_depth} levels deep; a TLS report nests 5", "max_depth"
                )
        else:
            depth = max(0, depth - 1)


def _policy(raw: object, n: int, limits: TlsReportLimits, warnings: list[str]) -> TlsPolicy:
    where = f"policies[{n}]"
    if not isinstance(raw, dict):
        raise ReportInvalid(f"{where} is a JSON {_kind(raw)}, not an object")
    policy = raw.get("policy")
    summary = raw.get("summary")
    if not isinstance(policy, dict):
        raise ReportInvalid(f"{where} has no policy object (RFC 8460 §4.4)")
    if not isinstance(summary, dict):
        raise ReportInvalid(f"{where} has no summary object (RFC 8460 §4.4)")
    policy_type = (_text(policy, "policy-type", limits, required=True, where=where) or "").lower()
    if policy_type not in POLICY_TYPES:
        raise ReportInvalid(
            f"{where}.policy-type is “{policy_type[:40]}”; RFC 8460 §4.4 allows sts, tlsa or no-policy-found"
        )
    domain_text = _text(policy, "policy-domain", limits, required=True, where=where) or ""
    try:
        domain = normalise_domain(domain_text)
    except InvalidDomain as error:
        raise ReportInvalid(f"{where}.policy-domain is not a domain name: {error}") from None
    successful = _count(summary, "total-successful-session-count", f"{where}.summary", limits)
    failed = _count(summary, "total-failure-session-count", f"{where}.summary", limits)
    raw_details = raw.get("failure-details") or []
    if not isinstance(raw_details, list):
        raise ReportInvalid(f"{where}.failure-details is a JSON {_kind(raw_details)}, not a list")
    failures = []
    for m, detail in enumerate(raw_details):
        parsed = _failure(detail, f"{where}.failure-details[{m}]", limits, warnings)
        if parsed is not None:
            failures.append(parsed)
    listed = sum(f.sessions for f in failures)
    if listed > failed:
        # Mail.ru's reports list more failed sessions in the details than in the summary: the
        # summary is the count RFC 8460 §4.4 defines, so the totals use it; the details are kept.
        warnings.append(
            f"{where}: the failure details count {listed:,} sessions, the summary {failed:,} failed: "
            "the totals use the summary"
        )
    return TlsPolicy(
        policy_type=policy_type,
        domain=domain,
        policy_strings=_strings(policy.get("policy-string"), limits),
        # Some reporters write mx-host as one string instead of a list (parsedmarc's sample).
        mx_hosts=_strings(policy.get("mx-host"), limits),
        successful=successful,
        failed=failed,
        failures=tuple(failures),
    )


def _failure(
    raw: object, where: str, limits: TlsReportLimits, warnings: list[str]
) -> TlsFailureDetail | None:
    if not isinstance(raw, dict):
        raise ReportInvalid(f"{where} is a JSON {_kind(raw)}, not an object")
    result_type = (_text(raw, "result-type", limits, required=True, where=where) or "").lower()
    if not _TOKEN.fullmatch(result_type):
        warnings.append(f"{where}: result-type “{result_type[:40]}” is not a result type: skipped")
        return None
    return TlsFailureDetail(
        result_type=result_type,
        sending_ip=_ip(raw.get("sending-mta-ip"), f"{where}.sending-mta-ip", warnings),
        receiving_mx=_host(raw.get("receiving-mx-hostname"), f"{where}.receiving-mx-hostname", warnings),
        receiving_ip=_ip(raw.get("receiving-ip"), f"{where}.receiving-ip", warnings),
        failure_code=_text(raw, "failure-reason-code", limits, where=where),
        sessions=_count(raw, "failed-session-count", where, limits),
    )


def _text(
    obj: dict[str, Any], key: str, limits: TlsReportLimits, required: bool = False, where: str = "the report"
) -> str | None:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ReportInvalid(f"{where} has no {key} (RFC 8460 §4.4 requires it)")
        return None
    if not isinstance(value, str):
        raise ReportInvalid(f"{where}.{key} is a JSON {_kind(value)}, not a string")
    # One line, printable: these strings reach a terminal and Slack.
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value.strip())
    return cleaned[: limits.max_text]


def _strings(value: object, limits: TlsReportLimits) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    kept = []
    for item in items[: limits.max_policy_strings]:
        if isinstance(item, str) and item.strip():
            kept.append("".join(ch if ch.isprintable() else " " for ch in item.strip())[: limits.max_text])
    return tuple(kept)


def _count(obj: dict[str, Any], key: str, where: str, limits: TlsReportLimits) -> int:
    value = obj.get(key, 0)
    # bool is an int in Python: `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportInvalid(f"{where}.{key} is {str(value)[:40]!r}, not a whole number of sessions")
    if value < 0:
        raise ReportInvalid(f"{where}.{key} is {value}: a session count is never negative")
    if value > limits.max_session_count:
        raise ReportRefused(
            f"{where}.{key} is {value:,}, over {limits.max_session_count:,}: no receiver reports that many "
            "sessions, so nothing in the report is believed",
            "max_session_count",
            value,
        )
    return value


def _ip(value: object, where: str, warnings: list[str]) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_address(str(value)[:64]))
    except ValueError:
        warnings.append(f"{where}: {str(value)[:40]!r} is not an IP address: left out")
        return None


def _host(value: object, where: str, warnings: list[str]) -> str | None:
    if value is None or value == "":
        return None
    try:
        return normalise_domain(str(value)[:300])
    except InvalidDomain:
        warnings.append(f"{where}: {str(value)[:40]!r} is not a host name: left out")
        return None


def _datetime(value: object, which: str) -> datetime:
    # RFC 8460 §4.4: RFC 3339 date-time, e.g. 2016-04-01T00:00:00Z.
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        raise ReportInvalid(f"date-range.{which} is {str(value)[:40]!r}, not an RFC 3339 date-time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReportInvalid(f"date-range.{which} is {value[:40]!r}, not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # RFC 3339 requires an offset; UTC is what reporters mean
    return moment.astimezone(UTC)


def _refuse_implausible_dates(begin: datetime, end: datetime, now: datetime | None) -> None:
    """A range no real report covers is refused: stored, it would skew every summary by date."""
    if end < begin:
        raise ReportInvalid(
            f"date-range ends ({end:%Y-%m-%d %H:%M}) before it starts ({begin:%Y-%m-%d %H:%M})"
        )
    if begin < EARLIEST_REPORT_DATE:
        raise ReportRefused(
            f"date-range begins {begin:%Y-%m-%d}, before {EARLIEST_REPORT_DATE:%Y}: no report covers that",
            "date_range",
        )
    latest = (now or datetime.now(UTC)) + MAX_REPORT_FUTURE
    if end > latest:
        raise ReportRefused(
            f"date-range ends {end:%Y-%m-%d %H:%M} UTC, more than a day in the future: refused", "date_range"
        )


def _kind(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null"
    )
