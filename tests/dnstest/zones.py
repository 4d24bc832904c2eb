"""Zone-file text for the test DNS server.

Records are `(owner, type, rdata)` in zone-file presentation form. Owners are relative to the origin
(`@`, `_dmarc`, `sel._domainkey`) or absolute with a trailing dot.

TXT rule: for type TXT (or SPF), rdata that starts with `"` is used as written (already passed
through `txt()` or hand-quoted); any other rdata is taken as the raw value and quoted with `txt()`.
So `("_dmarc", "TXT", "v=DMARC1; p=none")` and `("_dmarc", "TXT", txt("v=DMARC1; p=none"))` give
the same record. To publish a value that itself starts with a double quote, pass it through `txt()`.
"""

from __future__ import annotations

from collections.abc import Iterable

# RFC 1035 §3.3: a <character-string> is at most 255 bytes.
MAX_STRING = 255
_QUOTED_TYPES = frozenset({"TXT", "SPF"})


def _escape(chunk: bytes) -> str:
    out = []
    for byte in chunk:
        if byte in (0x22, 0x5C):  # " and \
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:  # control bytes and non-ASCII (UTF-8) bytes as \DDD, which every parser accepts
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def txt(value: str) -> str:
    """The presentation form of a TXT value: quoted strings of at most 255 bytes each (split on
    bytes of the UTF-8 encoding), `"` and `\\` escaped. Joining the strings gives `value` back."""
    data = value.encode("utf-8")
    if not data:
        return '""'
    return " ".join(_escape(data[i : i + MAX_STRING]) for i in range(0, len(data), MAX_STRING))


def _absolute(origin: str) -> str:
    origin = origin.strip()
    return origin if origin.endswith(".") else origin + "."


def make_zone(origin: str, records: Iterable[tuple[str, str, str]], ttl: int = 300) -> str:
    """A complete zone: $ORIGIN, $TTL, SOA, NS `ns.<origin>` with A 127.0.0.1, then `records`
    (see the module docstring for owners and the TXT quoting rule)."""
    apex = _absolute(origin)
    lines = [
        f"$ORIGIN {apex}",
        f"$TTL {ttl}",
        f"@ IN SOA ns.{apex} hostmaster.{apex} 1 3600 900 604800 {ttl}",
        f"@ IN NS ns.{apex}",
        "ns IN A 127.0.0.1",
    ]
    for owner, rdtype, rdata in records:
        kind = rdtype.strip().upper()
        if kind in _QUOTED_TYPES and not rdata.lstrip().startswith('"'):
            rdata = txt(rdata)
        lines.append(f"{owner} IN {kind} {rdata}")
    return "\n".join(lines) + "\n"
