"""The exact DNS entry a fix asks for: host, type, TTL and value, ready to paste anywhere.

A TXT value longer than 255 bytes must be published as several character-strings (RFC 1035 §3.3);
receivers join them with nothing in between (RFC 7208 §3.3 for SPF, RFC 6376 §3.6.2.2 for DKIM),
so a cut anywhere is correct. Cutting on exact byte counts, not at spaces, also keeps every string
free of leading or trailing blanks that some DNS providers' forms silently trim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_STRING_BYTES = 255  # RFC 1035 §3.3: one <character-string>
# RFC 1035 §4.2.1: a UDP answer over 512 bytes is truncated for resolvers without EDNS, which then
# retry over TCP (or fail, behind some middleboxes): the size an SPF answer should stay under.
CLASSIC_UDP_LIMIT = 512
DEFAULT_TTL = 3600


def split_txt(value: str) -> tuple[str, ...]:
    """The value as character-strings of at most 255 bytes each; joined, they give it back."""
    data = value.encode("utf-8")
    if not data:
        return ("",)
    chunks: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + MAX_STRING_BYTES, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # never cut a UTF-8 sequence in two (generated values are ASCII anyway)
        chunks.append(data[start:end].decode("utf-8"))
        start = end
    return tuple(chunks)


def quote_txt(value: str) -> str:
    """The zone-file form of a TXT value: quoted 255-byte strings separated by spaces."""
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in split_txt(value))


def _wire_name_length(name: str) -> int:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return sum(1 + len(label.encode("utf-8")) for label in labels) + 1


def txt_answer_size(host: str, values: Sequence[str]) -> int:
    """Bytes of a DNS response carrying every TXT record in `values` at `host` (no EDNS, no
    authority section): header 12, question, then per record a compressed owner (2), type, class,
    TTL and length (10), and the strings, each with its length byte (RFC 1035 §4.1)."""
    size = 12 + _wire_name_length(host) + 4
    for value in values:
        size += 2 + 10 + sum(1 + len(chunk.encode("utf-8")) for chunk in split_txt(value))
    return size


@dataclass(frozen=True, kw_only=True)
class DnsEntry:
    """One record to publish: `host` is fully qualified (no trailing dot); `zone` the domain the
    fix is for, which a DNS provider's "host" field is usually relative to."""

    host: str
    rdtype: str
    value: str
    zone: str
    ttl: int = DEFAULT_TTL

    @property
    def strings(self) -> tuple[str, ...]:
        """The TXT character-strings to enter (one element for a CNAME target)."""
        return split_txt(self.value) if self.rdtype == "TXT" else (self.value,)

    @property
    def relative_host(self) -> str:
        """The host as most DNS providers' forms want it: relative to the zone, `@` at the apex."""
        if self.host == self.zone:
            return "@"
        suffix = "." + self.zone
        return self.host[: -len(suffix)] if self.host.endswith(suffix) else self.host

    @property
    def presentation_value(self) -> str:
        """The value as a zone file writes it: quoted strings for TXT, an absolute name for CNAME."""
        if self.rdtype == "TXT":
            return quote_txt(self.value)
        return self.value.rstrip(".") + "."

    def bind_line(self) -> str:
        """The record as one BIND zone-file line."""
        return f"{self.host}. {self.ttl} IN {self.rdtype} {self.presentation_value}"


__all__ = [
    "CLASSIC_UDP_LIMIT",
    "DEFAULT_TTL",
    "MAX_STRING_BYTES",
    "DnsEntry",
    "quote_txt",
    "split_txt",
    "txt_answer_size",
]
