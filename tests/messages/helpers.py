"""Build what the `why` tests need: DKIM keys made here, messages signed with them by dkimpy, and
zones for NSD built from a plain name -> records map (one zone per top-level domain, so every name
the code asks about is answered authoritatively: NXDOMAIN and NODATA are real)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence

import dkim

from tests.dnstest import make_zone, txt
from tests.keys import ed25519_key as ed25519_key  # re-exported for the message tests
from tests.keys import rsa_key as rsa_key

Records = Mapping[str, Sequence[tuple[str, str]]]  # absolute name -> [(type, rdata)]


def key_record(public: str, k: str = "rsa") -> str:
    return f"v=DKIM1; k={k}; p={public}"


def message(
    from_: str = "Alice <alice@example.com>",
    subject: str = "Quarterly numbers",
    body: str = "Hello,\r\n\r\nthe numbers are attached.\r\n",
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """An unsigned message; `headers` come first (Received, Return-Path…), then the usual ones."""
    lines = [f"{name}: {value}" for name, value in headers]
    lines += [
        f"From: {from_}",
        "To: Bob <bob@receiver.example>",
        f"Subject: {subject}",
        "Date: Mon, 02 Mar 2026 10:00:00 +0000",
        "Message-ID: <20260302100000.1@example.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def sign(raw: bytes, domain: str, selector: str, private: bytes, algorithm: bytes = b"rsa-sha256") -> bytes:
    """`raw` with a DKIM-Signature by d=`domain` s=`selector` prepended (dkimpy signs)."""
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        private,
        signature_algorithm=algorithm,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return bytes(signature) + raw


def with_tags(signed: bytes, **tags: str) -> bytes:
    """`signed` (as sign() returns it) with tags of its topmost DKIM-Signature replaced: an
    attacker's edit. The field is unfolded first, so each tag is one `name=value` on one line."""
    field, rest = re.match(rb"(DKIM-Signature:.*?\r\n)(?![ \t])(.*)", signed, re.S).groups()  # type: ignore[union-attr]
    text = re.sub(r"\r\n[ \t]+", " ", field.decode("ascii")).rstrip("\r\n")
    for name, value in tags.items():
        text = re.sub(rf"(?<=[:;]) ?{name}=[^;]*", f" {name}={value}", text)
    return (text + "\r\n").encode("ascii") + rest


def worst_signature_value() -> str:
    """The longest b= the caps allow (1,368 characters: 1,024 bytes, an 8,192-bit signature),
    its value below any 8,192-bit modulus, so dkimpy does the whole RSA operation."""
    return base64.b64encode(b"\x01" + bytes(range(256)) * 3 + bytes(255)).decode("ascii")


def prepend(raw: bytes, *headers: tuple[str, str]) -> bytes:
    """Headers added on top, as each hop adds its own (Received, Authentication-Results…)."""
    return "".join(f"{n}: {v}\r\n" for n, v in headers).encode("utf-8") + raw


def zones(records: Records) -> dict[str, str]:
    """One zone per top-level domain holding every name under it."""
    by_tld: dict[str, list[tuple[str, str, str]]] = {}
    for name, entries in records.items():
        absolute = name.rstrip(".").lower() + "."
        tld = absolute.rstrip(".").rsplit(".", 1)[-1]
        by_tld.setdefault(tld, [])
        for rdtype, rdata in entries:
            if rdtype.upper() == "TXT" and not rdata.startswith('"'):
                rdata = txt(rdata)
            by_tld[tld].append((absolute, rdtype, rdata))
    return {tld: make_zone(tld, entries) for tld, entries in by_tld.items()}
