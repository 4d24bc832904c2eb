"""The DKIM part of a domain check: the public keys at named or probed selectors, and their problems.

checkdmarc has no DKIM checks, so this reads `<selector>._domainkey.<domain>` itself.
A selector cannot be listed from DNS: without one named, common providers' selectors are probed
concurrently, and a miss proves nothing (`dkim.no_selector` is info, naming what was tried).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from handlers.dns.resolver import DnsSession, Lookup
from handlers.domain.findings import Finding, Severity, cname_loop_finding, finding
from handlers.errors import BadInput
from handlers.limits import MAX_RSA_EXPONENT, MAX_RSA_KEY_BITS

# Selectors that mail providers and common software publish. Order does not matter: all are
# asked at once.
COMMON_SELECTORS: tuple[str, ...] = (
    "google",
    "selector1",
    "selector2",
    "default",
    "dkim",
    "mail",
    "email",
    "k1",
    "k2",
    "k3",
    "s1",
    "s2",
    "s1024",
    "s2048",
    "smtp",
    "mandrill",
    "mte1",
    "smtpapi",
    "em",
    "pm",
    "pic",
    "mxvault",
    "zendesk1",
    "zendesk2",
    "sendgrid",
    "mailjet",
    "mailchimp",
    "mc",
    "hs1",
    "hs2",
    "cm",
    "scph0316",
    "everlytickey1",
    "everlytickey2",
    "dkim1",
    "dkim2",
    "key1",
    "key2",
    "sig1",
    "sm",
    "protonmail",
    "protonmail2",
    "protonmail3",
    "fm1",
    "fm2",
    "fm3",
    "zoho",
    "zmail",
    "amazonses",
    "spop1024",
    "ctct1",
    "ctct2",
    "turbo-smtp",
    "mailo",
    "ovh",
    "krs",
    "a1",
    "dk",
    "x",
)

RSA_MINIMUM_BITS = 1024  # RFC 8301 §3.2: shorter keys must not be used to verify
RSA_RECOMMENDED_BITS = 2048  # RFC 8301 §3.2: signers should use at least 2048

_SELECTOR = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


MAX_SELECTORS = 20  # named for one domain: a watch, a check; more is a mistake or an abuse


class InvalidSelector(BadInput):
    """A selector that cannot be part of a DNS name."""


def validate_selector(selector: str) -> str:
    """Return the selector lower-cased, or raise InvalidSelector saying what would be right."""
    cleaned = selector.strip().lower()
    if not cleaned or len(cleaned) > 63 or not _SELECTOR.match(cleaned):
        raise InvalidSelector(
            f"“{selector[:70]}” is not a DKIM selector: use letters, digits, "
            "hyphens and dots, as in the s= tag of a DKIM-Signature"
        )
    return cleaned


def validate_selectors(texts: Sequence[str]) -> list[str]:
    """Each selector validated and lower-cased, duplicates dropped; more than MAX_SELECTORS is
    refused with InvalidSelector."""
    if len(texts) > MAX_SELECTORS:
        raise InvalidSelector(f"Give at most {MAX_SELECTORS} DKIM selectors")
    return list(dict.fromkeys(validate_selector(s) for s in texts))


@dataclass(frozen=True, kw_only=True)
class DkimKey:
    """One key record as published, and what it is."""

    selector: str
    name: str
    record: str
    key_type: str | None  # "rsa" / "ed25519"
    key_bits: int | None
    revoked: bool
    testing: bool
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "selector": self.selector,
            "name": self.name,
            "record": self.record,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "revoked": self.revoked,
            "testing": self.testing,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, kw_only=True)
class DkimReport:
    """The keys found, the selectors asked, and the findings."""

    domain: str
    keys: tuple[DkimKey, ...]
    selectors_tried: tuple[str, ...]
    probed: bool  # the common selectors were probed
    findings: tuple[Finding, ...]
    named: tuple[str, ...] = ()  # the selectors asked for by name: a missing key is news

    unknown: tuple[str, ...] = ()  # the selectors whose lookup failed: unknown, never "no key"


def parse_key_record(selector: str, name: str, record: str) -> DkimKey:
    """Parse a DKIM key record (RFC 6376 §3.6.1) and read the key it carries."""
    tags: dict[str, str] = {}
    problems: list[str] = []
    for index, part in enumerate(p.strip() for p in record.split(";")):
        if not part:
            continue
        tag, sep, value = (x.strip() for x in part.partition("="))
        if not sep:
            problems.append(f"“{part[:40]}” is not a tag=value pair")
            continue
        tag = tag.lower()
        if tag == "v" and index != 0:
            problems.append("v= must be the first tag")
        tags.setdefault(tag, value)
    if "v" in tags and tags["v"] != "DKIM1":
        problems.append(f"v={tags['v']} is not DKIM1")
    key_type = tags.get("k", "rsa").lower()
    if key_type not in ("rsa", "ed25519"):
        problems.append(f"k={key_type} is not a known key type (rsa or ed25519)")
    services = {x.strip().lower() for x in tags.get("s", "*").split(":")}
    if not services & {"*", "email"}:
        # RFC 6376 §3.6.1: verifiers of mail MUST ignore a key whose s= does not list email (or *).
        problems.append(
            f"s={tags['s']} limits the key to other services; mail verifiers ignore it "
            "(use s=email or leave s= out)"
        )
    flags = {f.strip().lower() for f in tags.get("t", "").split(":")}
    if "p" not in tags:
        problems.append("the p= tag (the public key) is missing")
        return DkimKey(
            selector=selector,
            name=name,
            record=record,
            key_type=key_type,
            key_bits=None,
            revoked=False,
            testing="y" in flags,
            problems=tuple(problems),
        )
    key_data = re.sub(r"\s+", "", tags["p"])
    if not key_data:  # RFC 6376 §3.6.1: an empty p= means the key has been revoked
        return DkimKey(
            selector=selector,
            name=name,
            record=record,
            key_type=key_type,
            key_bits=None,
            revoked=True,
            testing="y" in flags,
            problems=tuple(problems),
        )
    if key_type not in ("rsa", "ed25519"):  # already a problem; do not read it as an RSA key
        return DkimKey(
            selector=selector,
            name=name,
            record=record,
            key_type=key_type,
            key_bits=None,
            revoked=False,
            testing="y" in flags,
            problems=tuple(problems),
        )
    bits, problem = inspect_public_key(key_type, key_data)
    if problem:
        problems.append(problem)
    return DkimKey(
        selector=selector,
        name=name,
        record=record,
        key_type=key_type,
        key_bits=bits,
        revoked=False,
        testing="y" in flags,
        problems=tuple(problems),
    )


# Loading an RSA key is the costly part of reading a key record, and one provider key is often
# published (by CNAME) for many domains: each distinct key is loaded once.
@functools.lru_cache(maxsize=1024)
def inspect_public_key(key_type: str, key_data: str) -> tuple[int | None, str | None]:
    """The size of the key in a p= value, and what makes it unusable (None when usable). Read with
    `cryptography` (C code), so an outsized key is refused before dkimpy's pure-Python arithmetic."""
    try:
        der = base64.b64decode(key_data, validate=True)
    except (binascii.Error, ValueError):
        return None, "p= is not valid base64"
    if key_type == "ed25519":  # RFC 8463 §4.2: the raw 32-byte public key
        return (
            (256, None) if len(der) == 32 else (None, f"p= holds {len(der)} bytes, not an ed25519 key's 32")
        )
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        # Some signers publish a bare PKCS#1 RSAPublicKey; dkimpy and most receivers accept it.
        pem = (
            b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
        )
        try:
            key = load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            return None, "p= does not hold an RSA public key"
    if not isinstance(key, rsa.RSAPublicKey):
        return None, "p= holds a key that is not RSA, but k= says rsa"
    if key.key_size > MAX_RSA_KEY_BITS:
        return key.key_size, (
            f"the RSA key has {key.key_size} bits; keys over {MAX_RSA_KEY_BITS} bits are refused "
            "unverified (RFC 8301 §3.2 asks verifiers to handle 1024 to 4096)"
        )
    exponent = key.public_numbers().e
    if exponent > MAX_RSA_EXPONENT:
        return key.key_size, (
            f"the RSA key's public exponent has {exponent.bit_length()} bits; exponents over 2^32 "
            "are refused unverified (signers use 65537)"
        )
    return key.key_size, None


async def check_dkim(
    session: DnsSession,
    domain: str,
    selectors: Sequence[str] = (),
    *,
    known: Sequence[str] | None = None,
    probe: bool | None = None,
) -> DkimReport:
    """Read the keys at the named `selectors` (a miss is `dkim.key_missing`), at the `known` ones
    (found by an earlier probe: a miss is no finding, the key is simply gone) and, when `probe`,
    at COMMON_SELECTORS (a miss proves nothing). By default a check probes when none is named;
    the monitor passes what it knows and probes only when a probe is due."""
    probe = not selectors if probe is None else probe
    named = tuple(dict.fromkeys(selectors))
    lenient = tuple(
        s for s in dict.fromkeys([*(known or ()), *(COMMON_SELECTORS if probe else ())]) if s not in named
    )
    tried = named + lenient
    names = [f"{s}._domainkey.{domain}" for s in tried]
    lookups = await session.lookup_many((name, "TXT") for name in names)
    keys: list[DkimKey] = []
    findings: list[Finding] = []
    outages: list[Lookup] = []
    for selector, name, lookup in zip(tried, names, lookups, strict=True):
        if lookup.is_cname_loop:
            findings.append(cname_loop_finding(lookup))
            continue
        if lookup.is_outage:
            outages.append(lookup)
            continue
        is_named = selector in named
        records = [r for r in lookup.records if _looks_like_key(r, not is_named)]
        if not records:
            if is_named:
                findings.append(
                    finding(
                        "dkim.key_missing",
                        f"{name}: {lookup.describe_failure()}. Mail signed with s={selector} "
                        f"d={domain} fails DKIM.",
                        fix=f"Publish the public key your mail provider gives for selector "
                        f"{selector} at {name} (often a CNAME to the provider).",
                    )
                )
            continue
        key = parse_key_record(selector, name, records[0])
        keys.append(key)
        findings += _key_findings(key)
    if outages:
        failed = ", ".join(o.name for o in outages[:5]) + (" …" if len(outages) > 5 else "")
        findings.append(
            finding(
                "dns.temperror",
                f"{len(outages)} DKIM key lookups failed ({outages[0].describe_failure()}; "
                f"names: {failed}); those selectors are unknown, not missing.",
            )
        )
    if not named and not keys and not outages:
        common = len(COMMON_SELECTORS)
        findings.append(
            finding(
                "dkim.no_selector",
                f"No DKIM key at any of {common} common selectors ({', '.join(COMMON_SELECTORS[:12])}, …)"
                + ("" if probe else ", as last probed")
                + ". This does not prove DKIM is absent: selectors cannot be listed from DNS.",
                # each surface (command line, Slack) adds its own way to name a selector
                fix="Run the check again with the selector from the s= tag of a DKIM-Signature "
                "header in a message you sent.",
            )
        )
    unknown = tuple(o.name.split("._domainkey.", 1)[0] for o in outages)
    return DkimReport(
        domain=domain,
        keys=tuple(keys),
        selectors_tried=tried,
        probed=probe,
        findings=tuple(findings),
        named=named,
        unknown=unknown,
    )


def _looks_like_key(record: str, probed: bool) -> bool:
    """A wildcard TXT (an SPF record, a verification token) answers any probed name; only a record
    with DKIM's tags counts as a key there. A named selector's record is judged as it is."""
    if not probed:
        return True
    lowered = re.sub(r"\s+", "", record.lower())
    return lowered.startswith("v=dkim1") or re.search(r"(^|;)p=", lowered) is not None


def _key_findings(key: DkimKey) -> list[Finding]:
    findings = []
    if key.revoked:
        findings.append(
            finding(
                "dkim.key_revoked",
                f"{key.name} publishes an empty p=: the key for selector {key.selector} is revoked, "
                "so every signature made with it fails.",
                record=key.record,
            )
        )
    if key.problems:
        findings.append(
            finding("dkim.key_invalid", f"{key.name}: " + "; ".join(key.problems) + ".", record=key.record)
        )
    if key.key_type == "rsa" and key.key_bits is not None:
        if key.key_bits < RSA_MINIMUM_BITS:
            findings.append(
                finding(
                    "dkim.weak_key",
                    f"{key.name} is a {key.key_bits}-bit RSA key; receivers must reject keys under "
                    f"{RSA_MINIMUM_BITS} bits (RFC 8301), so its signatures count as failures.",
                    record=key.record,
                )
            )
        elif key.key_bits < RSA_RECOMMENDED_BITS:
            findings.append(
                finding(
                    "dkim.weak_key",
                    f"{key.name} is a {key.key_bits}-bit RSA key; RFC 8301 recommends "
                    f"{RSA_RECOMMENDED_BITS} bits.",
                    record=key.record,
                    severity=Severity.WARNING,
                )
            )
    if key.testing:
        findings.append(
            finding(
                "dkim.testing",
                f"{key.name} has t=y: receivers may treat failing signatures as if unsigned.",
                record=key.record,
            )
        )
    return findings
