"""Unpack a DMARC aggregate report as it arrives (XML, gzip, zip, or a mail carrying one) into XML.

Reports arrive as `.xml`, `.xml.gz`, `.zip` or attached to a mail (RFC 9990 §3, RFC 7489 §7.2.1.1), and
anyone can send them ("Untrusted input"). So the format is told by magic bytes, not by the name a
stranger chose; every size is capped before the bytes are trusted; and decompression is streamed
and stops at the cap, so a zip bomb is refused after inflating at most the cap, never all of it.
"""

from __future__ import annotations

import email
import email.policy
import io
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import IO

from handlers.errors import ReportError

__all__ = [
    "DEFAULT_LIMITS",
    "NoReportInMail",
    "ReportError",
    "ReportInvalid",
    "ReportLimits",
    "ReportRefused",
    "detect_format",
    "iter_report_documents",
    "over_limit",
    "read_mail",
    "unpack_report",
]

MiB = 1024 * 1024
MAX_MIME_DEPTH = 10  # multipart nesting; a report mail nests 2 deep, a forwarded one 4
MAX_MIME_PARTS = 200  # all parts, attachments or not
_CHUNK = 64 * 1024  # decompression step: the most a cap can be overshot by before we notice


class ReportRefused(ReportError):
    """A cap or a safety rule refused the input; `cap` names the ReportLimits field (or the rule)."""

    def __init__(self, reason: str, cap: str, value: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cap = cap
        self.value = value


class ReportInvalid(ReportError):
    """The input is not a valid aggregate report; the message says what is wrong and where."""


class NoReportInMail(ReportInvalid):
    """A mail with no report attached at all: a message, not a report (one shared for `why`)."""


@dataclass(frozen=True, kw_only=True)
class ReportLimits:
    """What one input may cost us. Defaults fit the largest real reports with a wide margin."""

    max_input_bytes: int = 25 * MiB  # the file or mail as received (a mail server's usual cap)
    max_xml_bytes: int = 200 * MiB  # all decompressed XML of one input together
    max_zip_members: int = 10
    max_attachments: int = 10  # report-like attachments of one mail
    # Per report (one XML document), not per file: a zip may hold max_zip_members reports, and
    # max_xml_bytes bounds them all together. 500,000 is about 250 MB of XML: more than any real
    # reporter sends in one report.
    max_records: int = 500_000
    # A record's <count> must fit in 32 bits: no receiver sees four billion messages from one
    # source in one report, and so every sum over stored counts stays far inside SQLite's 64 bits.
    max_record_count: int = 2**32 - 1
    max_record_elements: int = 10_000  # one <record> subtree; real ones have about 20
    max_auth_results: int = 50  # DKIM or SPF results kept per record
    max_text: int = 255  # every string kept from a report is cut to this
    # Bytes read with no element starting or ending: the parser holds text (blanks, comments, a
    # tag) whole until the next element event, so a gigabyte of blanks inside <feedback> would be
    # a gigabyte in memory. In real reports an element starts or ends every few dozen bytes.
    max_text_run: int = 1 * MiB


DEFAULT_LIMITS = ReportLimits()


def size_words(n: int) -> str:
    """A size as a person reads it: "25 MB" (MiB, as mail servers count), else bytes."""
    if n >= MiB:
        return f"{n / MiB:,.1f}".removesuffix(".0") + " MB"
    return f"{n:,} bytes"


def _over(what: str, cap: str, value: int, limit: int, unit: str = "bytes") -> ReportRefused:
    """A refusal in the user's words (the size or count, and what is accepted), never the name
    of the limit's setting; `cap` names it for the code and the logs."""
    if unit == "bytes":
        return ReportRefused(
            f"{what} larger than {size_words(limit)} ({size_words(value)}), the most accepted", cap, value
        )
    return ReportRefused(f"{what} {value:,} {unit}; at most {limit:,} are accepted", cap, value)


class _Budget:
    """Decompressed bytes left for this input, shared by every member and attachment."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            # The true size is unknown on purpose: we stopped inflating at the cap.
            raise ReportRefused(
                f"the report's XML, once decompressed, is larger than {size_words(self.limit)}, "
                f"the most accepted (stopped after {size_words(self.used)})",
                "max_xml_bytes",
                self.used,
            )


_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# An RFC 5322 header field (printable ASCII name, colon), optionally after an mbox "From " line.
_HEADER_LINE = re.compile(rb"(?:From [^\r\n]*\r?\n)?[!-9;-~]{1,76}:")
_ARCHIVE_SUFFIX = re.compile(r"\.(?:xml|gz|gzip|zip)$", re.IGNORECASE)
# Content types reporters really use for the report part (mimecast: application/gzip; Google:
# application/zip; others application/x-gzip, application/octet-stream, text/xml).
_REPORT_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-gunzip",
        "application/octet-stream",
        "application/xml",
        "text/xml",
    }
)


def detect_format(data: bytes) -> str | None:
    """Name the container by its first bytes: "xml", "gzip", "zip", "mail", or None."""
    if data[:2] == b"\x1f\x8b":  # RFC 1952 §2.3.1
        return "gzip"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # local file header / empty archive
        return "zip"
    head = data[:4096]
    if head.startswith(_UTF16_BOMS):
        return "xml"
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    if head.lstrip(b" \t\r\n").startswith(b"<"):
        return "xml"
    # `{"organization-name":` would pass for a header field name (RFC 5322 allows { and "), but
    # compact JSON is an SMTP TLS report (RFC 8460), not a mail
    if head.lstrip(b" \t\r\n").startswith((b"{", b"[")):
        return None
    if _HEADER_LINE.match(head):
        return "mail"
    return None


def unpack_report(
    data: bytes, filename: str | None = None, limits: ReportLimits = DEFAULT_LIMITS
) -> list[bytes]:
    """Return the XML document(s) inside an uploaded or mailed report, or raise a ReportError.
    Each document is held whole: for tests and small inputs; ingestion streams them instead."""
    return [document.read() for document in iter_report_documents(data, filename, limits)]


def iter_report_documents(
    data: bytes, filename: str | None = None, limits: ReportLimits = DEFAULT_LIMITS
) -> Iterator[IO[bytes]]:
    """Yield each XML document inside an uploaded or mailed report as a stream, inflated as it is
    read (never held inflated); read each before asking for the next. Raises a ReportError, also
    from the streams' reads (a corrupt member, the max_xml_bytes cap)."""
    if len(data) > limits.max_input_bytes:
        raise _over("the file is", "max_input_bytes", len(data), limits.max_input_bytes)
    if not data or data.isspace():  # isspace, not strip(): no copy of a large input
        raise ReportInvalid("the file is empty")
    budget = _Budget(limits.max_xml_bytes)
    kind = detect_format(data)
    if kind is None and filename and filename.lower().endswith((".eml", ".msg")):
        kind = "mail"  # the name is only a tie-breaker for a mail whose first line is odd
    if kind == "mail":
        yield from _unpack_mail(data, budget, limits)
        return
    if kind is None:
        raise ReportInvalid(f"not a report: {_what_it_is(data)}")
    found = 0
    for document in _unpack_payload(data, kind, budget, limits):
        found += 1
        yield document
    if not found:
        raise ReportInvalid("the zip archive holds no XML file")


def _unpack_payload(data: bytes, kind: str, budget: _Budget, limits: ReportLimits) -> Iterator[IO[bytes]]:
    if kind == "xml":
        budget.take(len(data))
        yield io.BytesIO(data)
    elif kind == "gzip":
        yield _gunzip(io.BytesIO(data), budget)
    elif kind == "zip":
        yield from _unzip(data, budget, limits)
    # anything else inside a mail (a logo, a PDF) is not ours to read


class _Inflating(io.RawIOBase):
    """A read-only raw stream over produce(n) -> up to n bytes (b"" at the end); each read is
    counted against the budget and fills the buffer as far as it can, so peek() sees a whole head."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget

    def readable(self) -> bool:
        return True

    def produce(self, n: int) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            chunk = self.produce(min(_CHUNK, len(view) - filled))
            if not chunk:
                break
            self._budget.take(len(chunk))
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled


class _GzipInflater(_Inflating):
    """A gzip stream inflated as it is read. Multi-member gzip (RFC 1952 §2.2) reads as the
    members' contents concatenated; bytes after the last member that are not another member are
    ignored (Mimecast, for one, appends a CRLF that makes gzip.decompress() fail on a good report)."""

    def __init__(self, source: IO[bytes], budget: _Budget) -> None:
        super().__init__(budget)
        self._source = source
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
        self._pending = b""
        self._done = False

    def _more_input(self) -> bytes:
        try:
            return self._source.read(_CHUNK)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
            raise ReportInvalid(f"the gzip data is corrupt: {exc}") from None

    def produce(self, n: int) -> bytes:
        while not self._done:
            if self._inflater.eof:
                rest = self._inflater.unused_data + self._more_input()
                if rest[:2] != b"\x1f\x8b":
                    self._done = True
                    break
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest
            if not self._pending:
                self._pending = self._more_input()
                if not self._pending:
                    raise ReportInvalid("the gzip data is truncated (no end of stream)")
            try:
                # max_length bounds each step, so a bomb costs at most the cap plus one chunk.
                chunk = self._inflater.decompress(self._pending, n)
            except zlib.error as exc:
                raise ReportInvalid(f"the gzip data is corrupt: {exc}") from None
            self._pending = self._inflater.unconsumed_tail
            if chunk:
                return chunk
        return b""


class _MemberReader(_Inflating):
    """One zip member inflated as it is read: the sizes in the zip headers are the sender's word,
    so every byte is counted as it comes."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> None:
        super().__init__(budget)
        self._name = info.filename[:100]
        self._member = archive.open(info)

    def produce(self, n: int) -> bytes:
        try:
            return self._member.read(n)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
            raise ReportInvalid(f"the zip member {self._name!r} is corrupt: {exc}") from None
        except NotImplementedError as exc:  # e.g. deflate64, which zipfile cannot inflate
            raise ReportInvalid(f"the zip member {self._name!r} uses {exc}") from None

    def close(self) -> None:
        self._member.close()
        super().close()


def _buffered(raw: io.RawIOBase) -> io.BufferedReader:
    return io.BufferedReader(raw, buffer_size=_CHUNK)


def _head(stream: io.BufferedReader) -> bytes:
    """The first bytes of a stream, left unread, enough for detect_format()."""
    return stream.peek(4096)[:4096]


def _gunzip(source: IO[bytes], budget: _Budget) -> IO[bytes]:
    xml = _buffered(_GzipInflater(source, budget))
    head = _head(xml)
    if detect_format(head) != "xml":
        raise ReportInvalid(f"the gzip file does not hold a report: {_what_it_is(head)}")
    return xml


def _what_it_is(data: bytes) -> str:
    if data.lstrip()[:1] in (b"{", b"["):
        # SMTP TLS reports (RFC 8460) reach the same mailbox and are JSON.
        return "it is JSON (an SMTP TLS report?), not a DMARC aggregate report"
    return f"expected XML, gzip, zip or a mail message, got data starting with {data[:16]!r}"


def _precheck_zip(data: bytes, limits: ReportLimits) -> None:
    # ZipFile() reads the whole central directory into ZipInfo objects before we can count them;
    # the end-of-central-directory record (APPNOTE 4.3.16) tells the count and size up front.
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if eocd < 0 or eocd + 22 > len(data):
        return  # ZipFile() will say what is wrong
    entries = int.from_bytes(data[eocd + 10 : eocd + 12], "little")
    directory_size = int.from_bytes(data[eocd + 12 : eocd + 16], "little")
    if entries > limits.max_zip_members:
        raise _over("the zip archive has", "max_zip_members", entries, limits.max_zip_members, "files")
    # A central directory entry is 46 bytes plus name, extra field and comment; 4 KiB each is
    # generous. A larger directory lies about its count, or holds names no reporter writes.
    if directory_size > (limits.max_zip_members + 1) * 4096:
        raise ReportRefused(
            f"the zip archive's list of files is {directory_size:,} bytes, too large for the "
            f"at most {limits.max_zip_members} files accepted",
            "max_zip_members",
            directory_size,
        )


def _unzip(data: bytes, budget: _Budget, limits: ReportLimits) -> Iterator[IO[bytes]]:
    _precheck_zip(data, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ReportInvalid(f"not a readable zip archive: {exc}") from None
    with archive:
        # Not ZipInfo.is_dir(): it fails on the nameless member a zip written from a pipe has.
        members = [info for info in archive.infolist() if not info.filename.endswith("/")]
        # Counted from the central directory before any member is inflated.
        if len(members) > limits.max_zip_members:
            count = len(members)
            raise _over("the zip archive has", "max_zip_members", count, limits.max_zip_members, "files")
        for info in members:
            if info.flag_bits & 0x1:
                raise ReportInvalid(f"the zip member {info.filename[:100]!r} is encrypted")
            try:
                member = _buffered(_MemberReader(archive, info, budget))
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
                raise ReportInvalid(f"the zip member {info.filename[:100]!r} is corrupt: {exc}") from None
            except NotImplementedError as exc:
                raise ReportInvalid(f"the zip member {info.filename[:100]!r} uses {exc}") from None
            with member:
                kind = detect_format(_head(member))
                if kind == "gzip":
                    yield _gunzip(member, budget)
                elif kind == "xml":
                    yield member
                # else: a README or the like beside the report; skipped


def _unpack_mail(data: bytes, budget: _Budget, limits: ReportLimits) -> Iterator[IO[bytes]]:
    _, parts = read_mail(data, limits)
    candidates = [part for part in parts if _is_report_part(part)]
    if len(candidates) > limits.max_attachments:
        count = len(candidates)
        raise _over("the message has", "max_attachments", count, limits.max_attachments, "attachments")
    found = 0
    for part in candidates:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        kind = detect_format(payload)
        if kind in ("xml", "gzip", "zip"):  # never a mail inside a mail: one level of nesting
            for document in _unpack_payload(payload, kind, budget, limits):
                found += 1
                yield document
    if not found:
        raise NoReportInMail("the message carries no aggregate report (no XML, gzip or zip attachment)")


def read_mail(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> tuple[Message, list[Message]]:
    """The mail in `data`, and every part of it (the mail first) within MAX_MIME_DEPTH and
    MAX_MIME_PARTS; a ReportRefused past either."""
    try:
        # compat32 parses leniently and records defects instead of raising on odd headers.
        message = email.message_from_bytes(data, policy=email.policy.compat32)
        return message, _walk(message, limits)
    except RecursionError:
        # The stdlib parser recurses once per nested multipart: a few thousand levels (300 kB of
        # mail) exhaust the stack.
        raise ReportRefused(
            f"the message nests MIME parts more than {MAX_MIME_DEPTH} deep",
            "max_mime_depth",
        ) from None


def over_limit(what: str, cap: str, value: int, limit: int, unit: str = "bytes") -> ReportRefused:
    """A refusal for a value over a cap, in the user's words (see _over)."""
    return _over(what, cap, value, limit, unit)


def _walk(message: Message, limits: ReportLimits) -> list[Message]:
    # Message.walk() with a depth cap (real reports nest 2 deep) and a part count cap.
    found: list[Message] = []
    pending: list[tuple[Message, int]] = [(message, 0)]
    while pending:
        part, depth = pending.pop()
        if depth > MAX_MIME_DEPTH:
            raise ReportRefused(
                f"the message nests MIME parts more than {MAX_MIME_DEPTH} deep",
                "max_mime_depth",
                depth,
            )
        found.append(part)
        if len(found) > MAX_MIME_PARTS:
            raise _over("the message has", "max_mime_parts", len(found), MAX_MIME_PARTS, "MIME parts")
        children = part.get_payload() if part.is_multipart() else []
        if isinstance(children, list):
            pending.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))
    return found


def _is_report_part(part: Message) -> bool:
    if part.is_multipart():
        return False
    if part.get_content_type() in _REPORT_TYPES:
        return True
    name = part.get_filename() or part.get_param("name")
    return isinstance(name, str) and bool(_ARCHIVE_SUFFIX.search(name))
