"""Parse a DMARC aggregate (rua) report into typed, bounded, normalised values.

Covers RFC 7489 appendix C reports (no namespace) and RFC 9990 ones
(`urn:ietf:params:xml:ns:dmarc-2.0`); namespaces are stripped, so drafts with their own namespace
(`http://dmarc.org/dmarc-xml/0.1`) parse too.

The XML comes from strangers (anyone can mail a rua= address): it is parsed with defusedxml with
DTDs and entities refused, as a stream, each <record> dropped from the tree once read, so memory does
not grow with the number of records; the record count is capped; every string kept is cut to
`ReportLimits.max_text`; source IPs are validated.

Broken input, chosen behaviour:
- not well-formed XML, bytes not valid in the declared encoding, an empty file, a missing
  required element (report_id, date range, policy domain, a reporter name or address):
  `ReportInvalid`, naming the problem and the line.
- XML that merely ends early (the document stops before `</feedback>`): if the metadata and the
  published policy were complete, the report is returned with the complete records read so far
  and `truncated=True`, so the caller can ingest it and say it was partial.
- one bad record (unparseable source IP or count): skipped, counted in `skipped_records`, and
  described in `warnings`; the rest of the report is kept. A count over 32 bits refuses the report
  (`ReportRefused`, cap `max_record_count`): no receiver sends that, so nothing in it is believed.
"""

from __future__ import annotations

import io
import ipaddress
import pyexpat
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import ParseError, iterparse

from handlers.limits import EARLIEST_REPORT_DATE, MAX_REPORT_FUTURE
from handlers.reports.archive import (
    DEFAULT_LIMITS,
    ReportError,
    ReportInvalid,
    ReportLimits,
    ReportRefused,
    detect_format,
    iter_report_documents,
    unpack_report,
)

__all__ = [
    "DEFAULT_LIMITS",
    "AggregateReport",
    "DkimResult",
    "PolicyPublished",
    "PolicyReason",
    "Record",
    "ReportError",
    "ReportInvalid",
    "ReportLimits",
    "ReportReader",
    "ReportRefused",
    "SpfResult",
    "detect_format",
    "iter_records",
    "iter_report_documents",
    "parse_report",
    "parse_report_file",
    "unpack_report",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DEPTH = 32  # real reports nest 5 deep; a stranger's 10-million-deep nest would fill memory
MAX_WARNINGS = 20  # warnings kept per report; the rest are only counted

# expat errors that only occur at the end of the input: the document was cut short, not malformed.
_EOF_ERRORS = frozenset(
    pyexpat.errors.codes[name]
    for name in (
        pyexpat.errors.XML_ERROR_NO_ELEMENTS,
        pyexpat.errors.XML_ERROR_UNCLOSED_TOKEN,
        pyexpat.errors.XML_ERROR_PARTIAL_CHAR,
        pyexpat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    )
)
_INVALID_TOKEN = pyexpat.errors.codes[pyexpat.errors.XML_ERROR_INVALID_TOKEN]
_DOMAIN_LIKE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\.?")
_TIMESTAMP = re.compile(r"[0-9]{1,11}(?:\.[0-9]*)?")  # NetEase sends "1337270400.0"
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() accepts "²", which int() refuses
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPublished:
    """The DMARC record the reporter found for the domain (RFC 9990 §3 `policy_published`)."""

    domain: str
    adkim: str = "r"  # RFC 9989/7489: relaxed when absent
    aspf: str = "r"
    p: str | None = None  # kept None when absent rather than inventing "none"
    sp: str | None = None
    np: str | None = None  # RFC 9989 only
    testing: str | None = None  # RFC 9989 `t=`, reported as <testing> y/n
    pct: int | None = None  # RFC 7489 only: removed by RFC 9989
    fo: str | None = None
    discovery_method: str | None = None  # RFC 9990: "psl" or "treewalk"


@dataclass(frozen=True, slots=True)
class PolicyReason:
    """Why the receiver's disposition differed from the policy (forwarded, mailing_list, ...)."""

    type: str | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class DkimResult:
    """One DKIM signature's result as the receiver evaluated it (not necessarily aligned)."""

    domain: str | None
    selector: str | None
    result: str | None


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The SPF result for one identity; `scope` is "mfrom" or "helo" (absent in RFC 9990)."""

    domain: str | None
    scope: str | None
    result: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One row: `count` messages from `source_ip` with the same identifiers and results."""

    source_ip: IPAddress
    count: int
    disposition: str | None
    dkim_eval: str | None  # policy_evaluated: "pass" or "fail" (DKIM aligned and passed)
    spf_eval: str | None
    header_from: str | None
    envelope_from: str | None = None
    envelope_to: str | None = None
    dkim: tuple[DkimResult, ...] = ()
    spf: tuple[SpfResult, ...] = ()
    reasons: tuple[PolicyReason, ...] = ()

    @property
    def dmarc_pass(self) -> bool:
        """DMARC passes when either aligned mechanism passed (RFC 9989 §4.7)."""
        return self.dkim_eval == "pass" or self.spf_eval == "pass"


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateReport:
    """A parsed aggregate report; `truncated` means the XML ended early and records may be missing."""

    org_name: str | None
    email: str | None
    report_id: str
    date_begin: datetime
    date_end: datetime
    policy: PolicyPublished
    records: tuple[Record, ...]
    version: str | None = None
    generator: str | None = None
    errors: tuple[str, ...] = ()  # the reporter's own report_metadata/error entries
    truncated: bool = False
    skipped_records: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def reporter(self) -> str:
        """Who sent it: the reporting address, else the organisation name (lower case)."""
        return (self.email or self.org_name or "").lower()

    @property
    def key(self) -> tuple[str, str, str, datetime, datetime]:
        """Identity for dedupe: a report resent by the same reporter is the same report."""
        return (self.reporter, self.report_id, self.policy.domain, self.date_begin, self.date_end)

    @property
    def message_count(self) -> int:
        """Messages covered by the records read."""
        return sum(record.count for record in self.records)


@dataclass(kw_only=True)
class _Header:
    """What precedes the records, filled in as the stream is read."""

    org_name: str | None = None
    email: str | None = None
    report_id: str | None = None
    begin: str | None = None
    end: str | None = None
    version: str | None = None
    generator: str | None = None
    errors: tuple[str, ...] = ()
    policy: PolicyPublished | None = None
    policy_domain_missing: bool = False


class _Reader:
    """One pass over one document: iterate `records()`, then read the header and the outcome."""

    def __init__(self, source: bytes | IO[bytes], limits: ReportLimits) -> None:
        self._raw = source if isinstance(source, bytes) else None
        self._stream = _RecentBytes(io.BytesIO(source) if isinstance(source, bytes) else source, limits)
        self.limits = limits
        self.header = _Header()
        self.truncated = False
        self.records_seen = 0
        self.skipped = 0
        self.warnings: list[str] = []
        self._names: dict[str, str] = {}
        self._seen_feedback = False
        self._eof_error: str | None = None

    def records(self) -> Iterator[Record]:
        """Yield each valid record as its element closes; raise ReportError on what cannot be read."""
        if self._raw is not None and (not self._raw or self._raw.isspace()):  # isspace: no copy
            raise ReportInvalid("the file is empty")
        try:
            yield from self._walk()
        except DTDForbidden as exc:
            # Every entity declaration lives in a DTD, so refusing DTDs refuses entity expansion
            # (billion laughs) and external entities (file or network reads) before they start.
            raise ReportRefused(
                f"the XML has a DTD (<!DOCTYPE {str(exc.name)[:40]}>): DTDs, entity declarations and "
                "external entities are refused in reports",
                "xml_dtd",
            ) from None
        except EntitiesForbidden as exc:
            raise ReportRefused(
                f"the XML declares the entity {str(exc.name)[:40]!r}: entities are refused in reports",
                "xml_entities",
            ) from None
        except ExternalReferenceForbidden:
            raise ReportRefused("the XML refers to an external entity: refused", "xml_external") from None
        except DefusedXmlException as exc:  # any refusal a later defusedxml adds
            raise ReportRefused(f"unsafe XML refused: {exc}", "xml_safety") from None
        except LookupError as exc:  # pyexpat asks Python's codecs for a declared encoding it lacks
            raise ReportInvalid(f"the XML declares an encoding we cannot read: {str(exc)[:80]}") from None
        except ValueError as exc:
            # pyexpat: "multi-byte encodings are not supported" (a declared Shift_JIS, say).
            raise ReportInvalid(f"the XML cannot be decoded: {str(exc)[:80]}") from None
        except ParseError as exc:
            if exc.code in _EOF_ERRORS and self._seen_feedback:
                # Ends early: what was read is kept; the caller checks the header is complete.
                self.truncated = True
                self._eof_error = self._describe(exc)
            else:
                raise ReportInvalid(self._describe(exc)) from None
        if not self._seen_feedback:
            raise ReportInvalid("not a DMARC aggregate report: no <feedback> element")

    def _local(self, tag: str) -> str:
        # "{urn:ietf:params:xml:ns:dmarc-2.0}record" -> "record"; memoised: there are few tags.
        name = self._names.get(tag)
        if name is None:
            name = tag.rsplit("}", 1)[-1]
            if len(self._names) < 1000:  # a stranger's document may invent endless tag names
                self._names[tag] = name
        return name

    def _walk(self) -> Iterator[Record]:
        limits = self.limits
        stack: list[Element] = []
        feedback: Element | None = None
        feedback_depth = -1
        elements_in_child = 0
        source = self._stream
        for event, elem in iterparse(source, events=("start", "end"), forbid_dtd=True):
            source.since_event = 0
            if event == "start":
                stack.append(elem)
                if len(stack) > MAX_DEPTH:
                    raise ReportRefused(
                        f"the XML nests elements more than {MAX_DEPTH} deep",
                        "max_depth",
                        len(stack),
                    )
                if feedback is None:
                    if self._local(elem.tag) == "feedback":
                        feedback, feedback_depth, self._seen_feedback = elem, len(stack), True
                else:
                    elements_in_child += 1
                    if elements_in_child > limits.max_record_elements:
                        raise ReportRefused(
                            f"one element of the report holds more than {limits.max_record_elements:,} "
                            "elements",
                            "max_record_elements",
                            elements_in_child,
                        )
                continue
            stack.pop()
            if feedback is None:
                if stack:
                    # Finished elements before <feedback> are no ancestor of it: drop them, so a
                    # stranger's preamble of junk cannot fill memory.
                    stack[-1].clear()
                continue
            if elem is feedback:
                return  # what follows </feedback> (a stray wrapper's end, say) is not ours
            if len(stack) != feedback_depth:
                continue  # inside a child of <feedback>: handled when the child closes
            elements_in_child = 0
            name = self._local(elem.tag)
            if name == "record":
                self.records_seen += 1
                if self.records_seen > limits.max_records:
                    raise ReportRefused(
                        f"the report has more than {limits.max_records:,} records, the most accepted",
                        "max_records",
                        self.records_seen,
                    )
                record = self._record(elem)
                if record is not None:
                    yield record
            elif name == "report_metadata":
                self._metadata(elem)
            elif name == "policy_published":
                self._policy(elem)
            elif name == "version":
                self.header.version = self._text(elem)
            # Drop the finished child from the tree: this is what keeps memory flat.
            feedback.clear()

    # --- element readers ---------------------------------------------------------------------

    def _text(self, elem: Element | None) -> str | None:
        if elem is None or elem.text is None:
            return None
        text = elem.text.strip()
        return text[: self.limits.max_text] if text else None

    def _lower(self, elem: Element | None) -> str | None:
        text = self._text(elem)
        return text.lower() if text is not None else None

    def _domain(self, elem: Element | None) -> str | None:
        text = self._text(elem)
        if text is None:
            return None
        return text.lower().rstrip(".") or None  # "example.com." is "example.com"

    def _children(self, elem: Element) -> dict[str, Element]:
        # First child of each name; repeated ones (dkim, spf, reason, error) are read with _all.
        found: dict[str, Element] = {}
        for child in elem:
            found.setdefault(self._local(child.tag), child)
        return found

    def _all(self, elem: Element, name: str) -> list[Element]:
        return [child for child in elem if self._local(child.tag) == name]

    def _metadata(self, elem: Element) -> None:
        kids = self._children(elem)
        header = self.header
        org_name = self._text(kids.get("org_name"))
        if org_name is not None and _DOMAIN_LIKE.fullmatch(org_name):
            org_name = org_name.lower()  # "Outlook.com" and "outlook.com" are one reporter
        header.org_name = org_name
        header.email = self._text(kids.get("email"))
        header.report_id = self._text(kids.get("report_id"))
        header.generator = self._text(kids.get("generator"))
        header.errors = tuple(
            text for err in self._all(elem, "error")[:MAX_WARNINGS] if (text := self._text(err))
        )
        date_range = kids.get("date_range")
        if date_range is not None:
            dates = self._children(date_range)
            header.begin = self._text(dates.get("begin"))
            header.end = self._text(dates.get("end"))

    def _policy(self, elem: Element) -> None:
        kids = self._children(elem)
        domain = self._domain(kids.get("domain"))
        if domain is None:
            self.header.policy_domain_missing = True
            return
        pct_text = self._text(kids.get("pct"))
        pct = int(pct_text) if pct_text and len(pct_text) <= 3 and _DIGITS.fullmatch(pct_text) else None
        self.header.policy = PolicyPublished(
            domain=domain,
            adkim=self._lower(kids.get("adkim")) or "r",
            aspf=self._lower(kids.get("aspf")) or "r",
            p=self._lower(kids.get("p")),
            sp=self._lower(kids.get("sp")),
            np=self._lower(kids.get("np")),
            testing=self._lower(kids.get("testing")),
            pct=pct,
            fo=self._lower(kids.get("fo")),
            discovery_method=self._lower(kids.get("discovery_method")),
        )

    def _skip(self, why: str) -> None:
        self.skipped += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"record {self.records_seen} skipped: {why}")

    def _record(self, elem: Element) -> Record | None:
        kids = self._children(elem)
        row = kids.get("row")
        if row is None:
            self._skip("no <row>")
            return None
        row_kids = self._children(row)
        ip_text = self._text(row_kids.get("source_ip"))
        try:
            source_ip: IPAddress = ipaddress.ip_address(ip_text or "")
        except ValueError:
            self._skip(f"source_ip {(ip_text or '')[:60]!r} is not an IP address")
            return None
        if isinstance(source_ip, ipaddress.IPv6Address) and source_ip.ipv4_mapped is not None:
            source_ip = source_ip.ipv4_mapped  # ::ffff:192.0.2.1 is the IPv4 sender
        count_text = self._text(row_kids.get("count"))
        if count_text is None or not _DIGITS.fullmatch(count_text):
            self._skip(f"count {(count_text or '')[:60]!r} is not a message count")
            return None
        if int(count_text) > self.limits.max_record_count:
            # Not one bad record among good ones: no receiver counts this many messages from one
            # source, so the report's other numbers are not to be believed either.
            raise ReportRefused(
                f"record {self.records_seen}: count {count_text} does not fit in 32 bits; at most "
                f"{self.limits.max_record_count:,} messages per record are accepted",
                "max_record_count",
                int(count_text),
            )
        evaluated = row_kids.get("policy_evaluated")
        disposition = dkim_eval = spf_eval = None
        reasons: tuple[PolicyReason, ...] = ()
        if evaluated is not None:
            ev = self._children(evaluated)
            disposition = self._lower(ev.get("disposition"))
            dkim_eval = self._lower(ev.get("dkim"))
            spf_eval = self._lower(ev.get("spf"))
            reasons = tuple(
                reason
                for r in self._all(evaluated, "reason")[: self.limits.max_auth_results]
                if (reason := self._reason(r)) is not None
            )
        identifiers = kids.get("identifiers")
        header_from = envelope_from = envelope_to = None
        if identifiers is not None:
            ids = self._children(identifiers)
            header_from = self._domain(ids.get("header_from"))
            envelope_from = self._domain(ids.get("envelope_from"))
            envelope_to = self._domain(ids.get("envelope_to"))
        dkim: list[DkimResult] = []
        spf: list[SpfResult] = []
        auth = kids.get("auth_results")
        if auth is not None:
            cap = self.limits.max_auth_results
            for child in auth:
                name = self._local(child.tag)
                if name == "dkim" and len(dkim) < cap:
                    res = self._children(child)
                    dkim.append(
                        DkimResult(
                            domain=self._domain(res.get("domain")),
                            selector=self._lower(res.get("selector")),
                            result=self._lower(res.get("result")),
                        )
                    )
                elif name == "spf" and len(spf) < cap:
                    res = self._children(child)
                    spf.append(
                        SpfResult(
                            domain=self._domain(res.get("domain")),
                            scope=self._lower(res.get("scope")),
                            result=self._lower(res.get("result")),
                        )
                    )
        return Record(
            source_ip=source_ip,
            count=int(count_text),
            disposition=disposition,
            dkim_eval=dkim_eval,
            spf_eval=spf_eval,
            header_from=header_from,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            dkim=tuple(dkim),
            spf=tuple(spf),
            reasons=reasons,
        )

    def _reason(self, elem: Element) -> PolicyReason | None:
        kids = self._children(elem)
        kind, comment = self._lower(kids.get("type")), self._text(kids.get("comment"))
        if kind is None and comment is None:
            return None  # <reason><type></type><comment></comment></reason> says nothing
        return PolicyReason(type=kind, comment=comment)

    # --- outcome -------------------------------------------------------------------------------

    def _describe(self, exc: ParseError) -> str:
        line, column = exc.position
        message = pyexpat.errors.messages[exc.code] if exc.code else str(exc)
        if exc.code == _INVALID_TOKEN:
            bad_utf8 = _utf8_error(self._stream.head, self._stream.recent, self._stream.recent_offset)
            if bad_utf8 is not None:
                return f"the XML is not valid UTF-8 at line {line}: {bad_utf8}"
        if exc.code in _EOF_ERRORS:
            return f"the XML ends early (line {line}, column {column}): {message}"
        return f"the XML is not well-formed at line {line}, column {column}: {message}"

    def report(self, records: tuple[Record, ...]) -> AggregateReport:
        """Assemble the report once `records()` is exhausted; ReportInvalid if the header is not whole."""
        header = self.header
        missing = []
        if header.report_id is None:
            missing.append("report_metadata/report_id")
        if header.begin is None:
            missing.append("report_metadata/date_range/begin")
        if header.end is None:
            missing.append("report_metadata/date_range/end")
        if header.policy is None:
            missing.append("policy_published/domain" if header.policy_domain_missing else "policy_published")
        if header.org_name is None and header.email is None:
            missing.append("report_metadata/org_name or email")
        if missing:
            why = f"missing required element(s): {', '.join(missing)}"
            if self._eof_error is not None:
                why = f"{self._eof_error}; {why}"
            raise ReportInvalid(why)
        assert header.report_id is not None and header.policy is not None  # for mypy: checked above
        begin = _timestamp(header.begin, "begin")
        end = _timestamp(header.end, "end")
        if begin > end:
            raise ReportInvalid(f"report_metadata/date_range begins ({begin:%Y-%m-%d %H:%M}) after it ends")
        _refuse_implausible_dates(begin, end)
        return AggregateReport(
            org_name=header.org_name,
            email=header.email.lower() if header.email else None,
            report_id=header.report_id,
            date_begin=begin,
            date_end=end,
            policy=header.policy,
            records=records,
            version=header.version,
            generator=header.generator,
            errors=header.errors,
            truncated=self.truncated,
            skipped_records=self.skipped,
            warnings=tuple(self.warnings),
        )


def _refuse_implausible_dates(begin: datetime, end: datetime) -> None:
    """A range no real report covers is refused: stored, it would skew every summary by date."""
    if begin < EARLIEST_REPORT_DATE:
        raise ReportRefused(
            f"report_metadata/date_range begins {begin:%Y-%m-%d}, before {EARLIEST_REPORT_DATE:%Y}, "
            "when DMARC reporting began: refused",
            "date_range",
        )
    latest = datetime.now(UTC) + MAX_REPORT_FUTURE
    if end > latest:
        raise ReportRefused(
            f"report_metadata/date_range ends {end:%Y-%m-%d %H:%M} UTC, more than a day in the "
            "future: refused",
            "date_range",
        )


def _timestamp(text: str | None, which: str) -> datetime:
    if text is None or not _TIMESTAMP.fullmatch(text):
        shown = (text or "")[:40]
        raise ReportInvalid(f"report_metadata/date_range/{which} is not a Unix timestamp: {shown!r}")
    return datetime.fromtimestamp(int(text.split(".", 1)[0]), tz=UTC)


class _RecentBytes:
    """A report stream as the parser reads it. It remembers its first bytes and the last two chunks
    read: enough to say, after expat stopped at an invalid token, whether bad UTF-8 was the cause,
    without keeping the document. And it refuses more than `max_text_run` bytes read with no element
    event (the reader resets `since_event` at each), which the parser would otherwise hold whole."""

    def __init__(self, stream: IO[bytes], limits: ReportLimits) -> None:
        self._stream = stream
        self._max_run = limits.max_text_run
        self.since_event = 0  # bytes read since the parser last gave an element event
        self.head = b""
        self.recent = b""
        self.recent_offset = 0  # where `recent` starts in the document
        self._last = b""

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.since_event += len(data)
        if self.since_event > self._max_run:
            raise ReportRefused(
                f"the XML has more than {self._max_run // (1024 * 1024):,} MB with no element in it, "
                "the most accepted",
                "max_text_run",
                self.since_event,
            )
        if len(self.head) < 200:
            self.head += data[: 200 - len(self.head)]
        self.recent_offset += len(self.recent) - len(self._last)
        self.recent = self._last + data
        self._last = data
        return data


def _utf8_error(head: bytes, recent: bytes, offset: int) -> str | None:
    # Only asked after expat failed: says whether bad UTF-8, not bad markup, was the cause.
    declared = _XML_ENCODING.match(head)
    if declared is not None and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return None
    skip = 0
    while offset and skip < min(3, len(recent)) and 0x80 <= recent[skip] <= 0xBF:
        skip += 1  # the window may start inside a character: not the character's fault
    try:
        recent[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = skip + exc.start
        if exc.reason == "unexpected end of data":
            return None  # the window ends mid-character; the next chunk was never read
        return f"byte 0x{recent[at]:02x} at offset {offset + at} ({exc.reason})"
    return None


def parse_report(xml: bytes | IO[bytes], limits: ReportLimits = DEFAULT_LIMITS) -> AggregateReport:
    """Parse one aggregate report XML document (bytes or a binary stream), streaming."""
    reader = _Reader(xml, limits)
    records = tuple(reader.records())
    return reader.report(records)


def iter_records(xml: bytes | IO[bytes], limits: ReportLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """Yield a report's records as they are read, in constant memory; header errors raise at the end."""
    reader = _Reader(xml, limits)
    yield from reader.records()
    reader.report(())  # validates the header (and so raises ReportInvalid) once the stream is done


def parse_report_file(
    data: bytes, filename: str | None = None, limits: ReportLimits = DEFAULT_LIMITS
) -> list[AggregateReport]:
    """Unpack an uploaded or mailed report (xml, gz, zip, eml) and parse every XML document in it."""
    return [parse_report(xml, limits) for xml in iter_report_documents(data, filename, limits)]


# The streaming reader, for a caller that stores records as they come (bot.reports.ingest): iterate
# `records()`, then `report(())` gives the header, validated; `records_seen` and `skipped` count.
ReportReader = _Reader
