"""Turn what a user typed into a domain name we may look up, or say exactly what is wrong with it.

Accepts `Example.COM.`, `https://example.com/path`, `user@example.com`, Slack's `<http://x|x>` and
`<mailto:u@x|u@x>` link forms, and IDN names (IDNA 2008 via the `idna` package: without it
`faß.de` would silently become `fass.de`: IDNA 2008, RFC 5891). Rejects everything else before any lookup.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna

from handlers.errors import BadInput

MAX_NAME_LENGTH = 253  # RFC 1035 §2.3.4, presentation form without the trailing dot
MAX_LABEL_LENGTH = 63
MAX_INPUT_LENGTH = 1000  # a bound before any parsing: anything longer is not a domain

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SLACK_LINK = re.compile(r"^<([^|>]*)(?:\|[^>]*)?>$")


class InvalidDomain(BadInput):
    """The input is not a domain name; the message says what was wrong and what would be right."""


def normalise_domain(text: str) -> str:
    """Return the lower-case ASCII (punycode) domain name the input names, or raise InvalidDomain."""
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidDomain(
            f"that is {len(text)} characters long; a domain name has at most "
            f"{MAX_NAME_LENGTH}. Give a name such as example.com."
        )
    candidate = _strip_wrappers(text.strip())
    if not candidate:
        raise InvalidDomain("no domain name was given. Give one such as example.com.")
    if any(ch.isspace() for ch in candidate):
        raise InvalidDomain(
            f"{_quote(candidate)} contains spaces; give one domain name, such as example.com."
        )
    if _is_ip_address(candidate):
        raise InvalidDomain(
            f"{_quote(candidate)} is an IP address; give the domain name that "
            "sends the mail, such as example.com."
        )
    candidate = candidate.rstrip(".")
    ascii_name = _to_ascii(candidate)
    # Lengths before the dot check: a 300-character word is too long, not merely "missing a dot".
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise InvalidDomain(
            f"the name is {len(ascii_name)} characters long; a domain name has at most {MAX_NAME_LENGTH}."
        )
    for label in ascii_name.split("."):
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidDomain(
                f"the label {_quote(label[:20] + '…')} is {len(label)} characters "
                f"long; each part between dots has at most {MAX_LABEL_LENGTH}."
            )
    if "." not in candidate:
        raise InvalidDomain(
            f"{_quote(candidate)} has no dot; give a full domain name such as {_quote(candidate + '.com')}."
        )
    for label in ascii_name.split("."):
        if "_" in label:
            # RFC 5321 §4.1.2: a mail domain is letters, digits and hyphens; "_dmarc" and
            # "sel._domainkey" are record names under a domain, not domains that send mail.
            raise InvalidDomain(
                f"{_quote(label)} contains an underscore, which a mail domain cannot "
                "have; if you pasted a record name such as _dmarc.example.com, give "
                "the domain itself (example.com)."
            )
        if label.startswith("xn--") and not _valid_punycode(label):
            raise InvalidDomain(
                f"{_quote(label)} is not valid punycode (an xn-- label must encode an "
                "internationalised name)."
            )
        if not _LABEL.match(label):
            raise InvalidDomain(
                f"{_quote(label or '(empty)')} is not a valid part of a domain name: "
                "use letters, digits and hyphens, not at either end."
            )
    return ascii_name


def display_name(ascii_name: str) -> str:
    """The Unicode form of a punycode name for people (`xn--bcher-kva.example` → `bücher.example`)."""
    if "xn--" not in ascii_name and ascii_name.isascii() and ascii_name == ascii_name.lower():
        # Nothing to decode, and idna would give it back as it is (lower-case, or unchanged
        # when invalid): a monitor cycle names tens of thousands of hosts, most of them plain.
        return ascii_name
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name


_A_LABEL_NAME = re.compile(r"(?<![\w.-])[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?![\w-])")


def unicode_names(text: str) -> str:
    """Prose with every name that holds an A-label (`xn--…`) shown in its Unicode form, so one
    answer names a domain one way. Not for record text: a record is shown as it is published."""
    if "xn--" not in text.lower():
        return text
    return _A_LABEL_NAME.sub(
        lambda m: display_name(m.group(0)) if "xn--" in m.group(0).lower() else m.group(0), text
    )


def first_mention(ascii_name: str) -> str:
    """How an answer names a domain the first time: the Unicode form, and for an internationalised
    name its A-label in parentheses (`bücher.example (xn--bcher-kva.example)`), so the name a
    DNS tool shows can be matched once; every later mention is the Unicode form alone."""
    shown = display_name(ascii_name)
    return shown if shown == ascii_name else f"{shown} ({ascii_name})"


def _strip_wrappers(text: str) -> str:
    link = _SLACK_LINK.match(text)
    if link:  # Slack turns typed URLs and addresses into <url|label>
        text = link.group(1)
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    if "://" in text:
        text = urlsplit(text).hostname or ""
    elif "/" in text:
        text = text.split("/", 1)[0]
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    return text.strip()


def _is_ip_address(text: str) -> bool:
    # A trailing dot makes a name absolute, but `192.0.2.1.` is still the address typed.
    try:
        ipaddress.ip_address(text.rstrip(".").strip("[]"))
    except ValueError:
        return False
    return True


def _valid_punycode(label: str) -> bool:
    try:
        idna.decode(label)
    except (idna.IDNAError, UnicodeError):
        return False
    return True


def _to_ascii(name: str) -> str:
    if name.isascii():
        return name.lower()
    try:
        # uts46 maps case and compatibility forms first, as browsers do; IDNA 2008 keeps ß distinct.
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as error:
        raise InvalidDomain(
            f"{_quote(name)} is not a valid internationalised domain name ({error})."
        ) from None


def _quote(text: str) -> str:
    return f"“{text[:80]}”"
