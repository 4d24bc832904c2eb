"""Read one message, or its header block alone, into what a DMARC diagnosis needs.

Everything here comes from a stranger: the size is capped before parsing, binary data and text that
is not a message are refused with a clear `MessageError`, and each header that is parsed further
(From, Received, Authentication-Results…) is bounded in length and count first. The raw bytes are
kept untouched for DKIM, whose signatures cover the exact header and body octets (RFC 6376 §3.4).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from email.errors import HeaderDefect, NonASCIILocalPartDefect
from email.policy import default as default_policy

from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.errors import BadInput

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # the cap the CLI and Slack announce: "over 10 MB"
MAX_HEADER_FIELDS = 2000  # real messages carry a few hundred at most (long Received chains)
MAX_HEADER_BYTES = 1024 * 1024  # the whole header block
MAX_FIELD_CHARS = 64 * 1024  # one unfolded header field
MAX_FROM_CHARS = 2000  # RFC 5322 §2.1.1 lines are ≤998 chars; a From this long is not a real one
MAX_PARSED_EACH = 100  # Received / A-R / signatures parsed further; the rest are counted only

# A header field name: printable US-ASCII except ":" (RFC 5322 §3.6.8).
_FIELD_LINE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_BINARY_MAGIC = (
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"BZh",
    b"\xfd7zXZ",
    b"Rar!",
    b"\x7fELF",
    b"MZ",
)
_LIST_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-archive",
    "list-owner",
    "list-subscribe",
    "mailing-list",
)
_FORWARD_HEADERS = (
    "x-forwarded-to",
    "x-forwarded-for",
    "x-original-to",
    "resent-from",
    "resent-sender",
    "resent-date",
    "resent-message-id",
)


class MessageError(BadInput):
    """Input that is not a message we can diagnose; the text says what is wrong and what to do."""


@dataclass(frozen=True)
class HeaderField:
    """One header field: its name as written and its unfolded value (UTF-8, errors replaced)."""

    name: str
    value: str

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, kw_only=True)
class ReceivedHop:
    """One Received field (RFC 5321 §4.4): who connected (`from`), from which IP, to whom (`by`)."""

    index: int  # 0 = topmost, the last hop added
    helo: str | None  # the name given in the from-clause (the client's HELO/EHLO)
    reverse_name: str | None  # the name in the TCP-info comment, when the receiver looked it up
    ip: str | None
    by: str | None
    raw: str

    @property
    def ip_is_public(self) -> bool:
        if self.ip is None:
            return False
        return ipaddress.ip_address(self.ip).is_global


@dataclass(frozen=True)
class AuthMethod:
    """One `method=result` of Authentication-Results (RFC 8601 §2.2) with its properties."""

    method: str
    result: str
    reason: str
    properties: dict[str, str] = field(default_factory=dict)  # "smtp.mailfrom" -> value


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results (or ARC-Authentication-Results) field."""

    authserv_id: str
    methods: tuple[AuthMethod, ...]
    raw: str

    def first(self, method: str) -> AuthMethod | None:
        return next((m for m in self.methods if m.method == method), None)

    def all(self, method: str) -> tuple[AuthMethod, ...]:
        return tuple(m for m in self.methods if m.method == method)


@dataclass(frozen=True)
class ReceivedSpf:
    """A Received-SPF field (RFC 7208 §9.1): the receiver's result and the key=value pairs."""

    result: str
    comment: str
    pairs: dict[str, str]
    raw: str


@dataclass(frozen=True)
class DkimSignatureTags:
    """The tags of one DKIM-Signature (RFC 6376 §3.5), for display; dkim_verify checks them."""

    index: int  # position among DKIM-Signature fields, topmost first (dkimpy's idx)
    tags: dict[str, str]

    @property
    def domain(self) -> str:
        return self.tags.get("d", "").strip().lower().rstrip(".")

    @property
    def selector(self) -> str:
        return self.tags.get("s", "").strip()

    @property
    def algorithm(self) -> str:
        return self.tags.get("a", "").strip().lower()

    @property
    def signed_headers(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.tags.get("h", "").split(":") if h.strip())


@dataclass(frozen=True)
class ArcSeal:
    """One ARC-Seal (RFC 8617 §4.1.3): instance, chain validation status and sealing domain."""

    instance: int | None
    cv: str
    domain: str


@dataclass(frozen=True, kw_only=True)
class ParsedMessage:
    """A message (or a header block alone) reduced to the identifiers DMARC evaluates."""

    raw: bytes  # normalised only by dropping a leading mbox "From " line and leading blank lines
    fields: tuple[HeaderField, ...]
    has_body: bool  # False for a header block with no blank line after it
    body_size: int
    from_address: str
    from_display_name: str
    from_domain: str  # lower-case ASCII (punycode)
    return_path: str | None  # the address inside Return-Path; "" for the null sender <>
    received: tuple[ReceivedHop, ...]
    received_spf: tuple[ReceivedSpf, ...]
    authentication_results: tuple[AuthResults, ...]
    arc_seals: tuple[ArcSeal, ...]
    arc_authentication_results: tuple[AuthResults, ...]
    dkim_signatures: tuple[DkimSignatureTags, ...]
    list_headers: tuple[str, ...]  # List-* field names present (a mailing list handled it)
    forward_headers: tuple[str, ...]  # Resent-*, X-Forwarded-* field names present

    def header(self, name: str) -> str | None:
        """The first field called `name` (case-insensitive), or None."""
        key = name.lower()
        return next((f.value for f in self.fields if f.key == key), None)

    def headers(self, name: str) -> tuple[str, ...]:
        key = name.lower()
        return tuple(f.value for f in self.fields if f.key == key)

    @property
    def envelope_domain(self) -> str | None:
        """The Return-Path domain: the MAIL FROM identity SPF checks (RFC 7208 §2.4)."""
        if not self.return_path or "@" not in self.return_path:
            return None
        return self.return_path.rpartition("@")[2].lower().rstrip(".") or None


def parse_message(data: bytes | str) -> ParsedMessage:
    """Parse a raw message or header block, or raise MessageError saying what is wrong with it."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"the input is {len(data) / 1024 / 1024:.1f} MB; messages over "
            f"{MAX_MESSAGE_BYTES // 1024 // 1024} MB are not read. The headers are enough: "
            "paste or upload the header block alone."
        )
    _refuse_binary(data)
    data = _strip_leading(data)
    if not data.strip():
        raise MessageError("the input is empty: give a raw message (.eml) or its headers.")
    header_bytes, has_body, body = _split(data)
    fields = _read_fields(header_bytes)
    from_address, display, from_domain = _author(fields)
    return ParsedMessage(
        raw=data,
        fields=fields,
        has_body=has_body,
        body_size=len(body),
        from_address=from_address,
        from_display_name=display,
        from_domain=from_domain,
        return_path=_return_path(fields),
        received=tuple(parse_received(f.value, i) for i, f in enumerate(_bounded(fields, "received"))),
        received_spf=tuple(parse_received_spf(f.value) for f in _bounded(fields, "received-spf")),
        authentication_results=tuple(
            parse_authentication_results(f.value) for f in _bounded(fields, "authentication-results")
        ),
        arc_seals=tuple(_arc_seal(f.value) for f in _bounded(fields, "arc-seal")),
        arc_authentication_results=tuple(
            parse_authentication_results(_drop_instance(f.value))
            for f in _bounded(fields, "arc-authentication-results")
        ),
        dkim_signatures=tuple(
            DkimSignatureTags(i, parse_tag_list(f.value))
            for i, f in enumerate(_bounded(fields, "dkim-signature"))
        ),
        list_headers=tuple(dict.fromkeys(f.name for f in fields if f.key in _LIST_HEADERS)),
        forward_headers=tuple(dict.fromkeys(f.name for f in fields if f.key in _FORWARD_HEADERS)),
    )


# -- input checks -----------------------------------------------------------------------------


def _refuse_binary(data: bytes) -> None:
    sample = data[: 64 * 1024]
    if sample.startswith(_BINARY_MAGIC):
        raise MessageError(
            "the input is a binary file (an archive, image or document), not a "
            "message: give the raw message (.eml) or paste its headers."
        )
    controls = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0D))
    if b"\x00" in sample or controls > len(sample) // 100:
        raise MessageError(
            "the input contains binary data, not the text of a message: give the "
            "raw message (.eml) or paste its headers."
        )


def _strip_leading(data: bytes) -> bytes:
    data = data.lstrip(b"\r\n\t ")
    if data.startswith(b"From ") and not _FIELD_LINE.match(data):
        # An mbox separator line ("From sender date"), not a header field: drop it.
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data


def _split(data: bytes) -> tuple[bytes, bool, bytes]:
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return data, False, b""
    return data[: match.start() + 1], True, data[match.end() :]


def _read_fields(header_bytes: bytes) -> tuple[HeaderField, ...]:
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise MessageError(
            f"the header block is {len(header_bytes) // 1024} KB; more than "
            f"{MAX_HEADER_BYTES // 1024} KB of headers is not a real message."
        )
    lines = re.split(rb"\r?\n", header_bytes.rstrip(b"\r\n"))
    if not _FIELD_LINE.match(lines[0]):
        shown = lines[0][:60].decode("utf-8", errors="replace")
        raise MessageError(
            f"this is not a message: it should start with header fields such as "
            f'"From: …", but the first line is "{shown}". Give the raw message '
            '(.eml, "Show original" in most mail clients) or its headers.'
        )
    raw_fields: list[list[bytes]] = []
    for number, line in enumerate(lines, 1):
        if line[:1] in (b" ", b"\t") and raw_fields:
            raw_fields[-1][1] += b" " + line.strip()
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            shown = line[:60].decode("utf-8", errors="replace")
            raise MessageError(
                f"line {number} of the headers is not a header field "
                f'("{shown}"): the header block seems cut or mixed with text. '
                "Paste the headers exactly as the mail client shows them."
            )
        raw_fields.append([match.group(1), line[match.end() :].strip()])
        if len(raw_fields) > MAX_HEADER_FIELDS:
            raise MessageError(f"more than {MAX_HEADER_FIELDS} header fields: not a real message.")
    fields = []
    for name, value in raw_fields:
        if len(value) > MAX_FIELD_CHARS:
            value = value[:MAX_FIELD_CHARS]  # only ever displayed or parsed up to this bound
        fields.append(HeaderField(name.decode("ascii"), value.decode("utf-8", errors="replace")))
    return tuple(fields)


def _bounded(fields: tuple[HeaderField, ...], key: str) -> list[HeaderField]:
    return [f for f in fields if f.key == key][:MAX_PARSED_EACH]


# -- From (RFC 5322 §3.6.2, RFC 9989 §4.4) ---------------------------------------------------


def _author(fields: tuple[HeaderField, ...]) -> tuple[str, str, str]:
    values = [f.value for f in fields if f.key == "from"]
    if not values:
        raise MessageError(
            "the message has no From header, so there is no author domain for "
            "DMARC to check (RFC 9989 §4.4). Check that the whole header block "
            "was pasted; receivers reject mail without a From."
        )
    if len(values) > 1:
        raise MessageError(
            f"the message has {len(values)} From headers; RFC 5322 §3.6 allows "
            "one, and receivers reject such mail or cannot apply DMARC to it."
        )
    return parse_from(values[0])


def parse_from(value: str) -> tuple[str, str, str]:
    """(address, display name, ASCII domain) of a From value, or MessageError for none or several."""
    if len(value) > MAX_FROM_CHARS:
        raise MessageError(
            f"the From header is {len(value)} characters long; that is not a real author address."
        )
    header = default_policy.header_factory("From", value)
    addresses = [a for a in header.addresses if a.username or a.domain]
    if len(addresses) > 1:
        listed = ", ".join(f"{a.username}@{a.domain}" for a in addresses[:5])
        raise MessageError(
            f"the From header names {len(addresses)} addresses ({listed}); "
            "DMARC evaluates exactly one author (RFC 9989 §4.4), so receivers "
            "reject this message or skip DMARC for it."
        )
    defects = [
        d
        for d in header.defects
        if isinstance(d, HeaderDefect) and not isinstance(d, NonASCIILocalPartDefect)
    ]
    if not addresses or not addresses[0].domain or not addresses[0].username:
        raise MessageError(
            f'the From header "{value[:100]}" holds no address '
            "(local-part@domain), so there is no author domain to check."
        )
    address = addresses[0]
    if address.domain.startswith("["):
        raise MessageError(
            f"the From address uses an address literal ({address.domain}); DMARC needs a domain name."
        )
    try:
        domain = normalise_domain(address.domain)
    except InvalidDomain as error:
        raise MessageError(f"the From domain is not valid: {error}") from None
    if defects and "<" in value and ">" not in value:
        raise MessageError(f'the From header "{value[:100]}" is malformed (an unclosed <).')
    return f"{address.username}@{domain}", str(address.display_name), domain


def _return_path(fields: tuple[HeaderField, ...]) -> str | None:
    # The topmost Return-Path is the one the final delivery agent wrote (RFC 5321 §4.4).
    value = next((f.value for f in fields if f.key == "return-path"), None)
    if value is None:
        return None
    inner = _strip_comments(value).strip()
    if inner.startswith("<"):
        inner = inner[1:].split(">", 1)[0]
    return inner.strip()[:320]


# -- Received (RFC 5321 §4.4) ------------------------------------------------------------------

_RECEIVED_FROM = re.compile(r"\bfrom\s+(\S+)", re.IGNORECASE)
_RECEIVED_BY = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
_BRACKET_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_BARE_IP = re.compile(r"(?<![\w.:])([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?![\w.])")


def parse_received(value: str, index: int = 0) -> ReceivedHop:
    """The from-clause name, the connecting IP and the by-clause host of a Received field."""
    text = value[:4096]
    head = text.split(";", 1)[0] if ";" in text else text
    # The from-clause ends where "by" starts; its comment carries the TCP info (reverse name, IP).
    by_match = _RECEIVED_BY.search(_mask_comments(head))
    from_part = head[: by_match.start()] if by_match else head
    from_match = _RECEIVED_FROM.search(_mask_comments(from_part))
    helo = from_match.group(1).strip("[]()") if from_match else None
    ip = None
    for candidate in _BRACKET_IP.findall(from_part) + _BARE_IP.findall(from_part):
        try:
            ip = str(ipaddress.ip_address(candidate))
            break
        except ValueError:
            continue
    reverse = None
    comment = re.search(r"\(([^()]*)\)", from_part)
    if comment:
        first = comment.group(1).strip().split()
        if first and not first[0].startswith("[") and "." in first[0] and "@" not in first[0]:
            reverse = first[0].rstrip(".").lower()
    return ReceivedHop(
        index=index,
        helo=helo.lower() if helo else None,
        reverse_name=reverse,
        ip=ip,
        by=by_match.group(1).lower() if by_match else None,
        raw=value[:2000],
    )


# -- Received-SPF (RFC 7208 §9.1) and Authentication-Results (RFC 8601 §2.2) ------------------------


def parse_received_spf(value: str) -> ReceivedSpf:
    """The result, the comment and the key=value pairs (client-ip, envelope-from, helo…)."""
    text = value[:4096].strip()
    result = text.split(None, 1)[0].lower() if text else ""
    comment = re.search(r"\(([^()]*)\)", text)
    pairs = {
        k.lower(): v.strip().strip('"')
        for k, v in re.findall(r"([\w-]+)\s*=\s*(\"[^\"]*\"|[^;\s]+)", _strip_comments(text))
    }
    return ReceivedSpf(result, comment.group(1) if comment else "", pairs, value[:2000])


def parse_authentication_results(value: str) -> AuthResults:
    """authserv-id and each method's result, reason and ptype.property values."""
    text = value[:16384]
    plain = _strip_comments(text)
    parts = [p.strip() for p in plain.split(";")]
    authserv = parts[0].split()[0] if parts and parts[0].split() else ""
    methods = []
    for part in parts[1:]:
        match = re.match(r"([\w.-]+)\s*=\s*([\w-]+)", part)
        if not match:
            continue
        reason = re.search(r"\breason\s*=\s*(\"[^\"]*\"|\S+)", part)
        props = {
            k.lower(): v.strip('"')
            for k, v in re.findall(r"\b([a-z]+\.[\w-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)", part, re.IGNORECASE)
        }
        methods.append(
            AuthMethod(
                match.group(1).lower(),
                match.group(2).lower(),
                reason.group(1).strip('"') if reason else "",
                props,
            )
        )
    return AuthResults(authserv, tuple(methods), value[:2000])


def _drop_instance(value: str) -> str:
    return re.sub(r"^\s*i\s*=\s*[0-9]+\s*;", "", value, count=1)


def _arc_seal(value: str) -> ArcSeal:
    tags = parse_tag_list(value)
    instance = tags.get("i", "")
    number = int(instance) if instance.isascii() and instance.isdigit() else None  # not "²"
    return ArcSeal(number, tags.get("cv", "").lower(), tags.get("d", "").lower())


def parse_tag_list(value: str) -> dict[str, str]:
    """A DKIM-style tag=value list (RFC 6376 §3.2), whitespace removed from values; first wins."""
    tags: dict[str, str] = {}
    for part in value[:MAX_FIELD_CHARS].split(";"):
        name, sep, tag_value = part.partition("=")
        name = name.strip().lower()
        if sep and name and name not in tags:
            tags[name] = re.sub(r"\s+", "", tag_value) if name in ("b", "bh", "h") else tag_value.strip()
    return tags


def _mask_comments(text: str) -> str:
    """The text with every (comment) replaced by spaces of the same length, nesting respected."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        if depth:
            out.append(" ")
        else:
            out.append(ch)
        if ch == ")" and depth:
            depth -= 1
    return "".join(out)


def _strip_comments(text: str) -> str:
    return re.sub(r" +", " ", _mask_comments(text))
