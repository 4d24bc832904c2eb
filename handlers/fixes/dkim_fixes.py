"""DKIM fixes: drop t=y from a key record; publish a strong key, with the provider's steps.

The bot never creates, asks for or posts a private key. A key is made by the mail provider (or the
person's own signer); the flow publishes only its public half, as a TXT record the person pastes or
as the provider's CNAME selectors (the provider then rotates the key behind them).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from handlers.dns.dns_entry import DnsEntry
from handlers.domain.dkim_keys import RSA_RECOMMENDED_BITS, parse_key_record, validate_selector
from handlers.fixes.providers import PROVIDERS_BY_KEY, MailProvider
from handlers.fixes.records import FixInputError, Proposal

MAX_KEY_INPUT = 4000
_PRIVATE_MARKERS = ("PRIVATE KEY", "BEGIN RSA PRIVATE", "BEGIN OPENSSH PRIVATE")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\.?$")


def key_host(selector: str, domain: str) -> str:
    """Where a selector's key lives (RFC 6376 §3.6.2.1)."""
    return f"{selector}._domainkey.{domain}"


def remove_testing_flag(record: str) -> str:
    """The key record without the `y` flag of t= (RFC 6376 §3.6.1), every other tag as it was."""
    parts = []
    for part in (p.strip() for p in record.split(";")):
        if not part:
            continue
        tag, _, value = (x.strip() for x in part.partition("="))
        if tag.lower() == "t":
            flags = [f.strip() for f in value.split(":") if f.strip() and f.strip().lower() != "y"]
            if not flags:
                continue
            part = f"t={':'.join(flags)}"
        parts.append(part)
    return "; ".join(parts)


def propose_dkim_testing(domain: str, selector: str, record: str, clears: tuple[str, ...]) -> Proposal:
    """The same key record without t=y."""
    host = key_host(selector, domain)
    fixed = remove_testing_flag(record)
    key = parse_key_record(selector, host, fixed)
    problems = tuple(key.problems) + (("t=y is still set",) if key.testing else ())
    return Proposal(
        kind="dkim_testing",
        domain=domain,
        host=host,
        rdtype="TXT",
        before=(record,),
        entries=(DnsEntry(host=host, rdtype="TXT", value=fixed, zone=domain),),
        clears=clears,
        problems=problems,
        notes=("Only the t= tag changes: the key itself stays the same.",),
        selector=selector,
    )


def parse_public_key_input(text: str) -> str:
    """A pasted public key — a DKIM record (`v=DKIM1; k=rsa; p=…`), a bare base64 key or a PEM
    PUBLIC KEY — as the record to publish, or FixInputError saying what would be right."""
    text = text.strip()
    if any(marker in text.upper() for marker in _PRIVATE_MARKERS):
        raise FixInputError(
            "key",
            "That is a private key: never paste or publish it. Paste the "
            "public key record your provider shows (v=DKIM1; k=rsa; p=…), "
            "and keep the private key on the signing server only.",
        )
    if len(text) > MAX_KEY_INPUT:
        raise FixInputError(
            "key", f"That is over {MAX_KEY_INPUT} characters; a 4096-bit public key record is under 800."
        )
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise FixInputError("key", "That PEM block is not a public key.") from None
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        text = base64.b64encode(der).decode()
    is_record = "=" in text.split(";")[0] and "p=" in text.replace(" ", "")
    record = text if is_record else f"v=DKIM1; k=rsa; p={text}"
    record = " ".join(record.replace('"', " ").split())
    parsed = parse_key_record("x", "x", record)
    if parsed.revoked:
        raise FixInputError("key", "p= is empty: that revokes the key. Paste the new public key.")
    if parsed.problems:
        raise FixInputError(
            "key",
            "Not a usable public key: "
            + "; ".join(parsed.problems)
            + ". Paste it as v=DKIM1; k=rsa; p=<base64>.",
        )
    if parsed.key_type == "rsa" and (parsed.key_bits or 0) < RSA_RECOMMENDED_BITS:
        raise FixInputError(
            "key",
            f"That is a {parsed.key_bits}-bit RSA key; publish a "
            f"{RSA_RECOMMENDED_BITS}-bit one (RFC 8301 §3.2).",
        )
    if parsed.testing:
        record = remove_testing_flag(record)
    return record


def parse_cname_target(text: str) -> str:
    """The CNAME target a provider's console shows, or FixInputError."""
    target = text.strip().rstrip(".").lower()
    if not _HOSTNAME.match(target) or len(target) > 253:
        raise FixInputError(
            "target", "Paste the host name the record points to, such as s1.domainkey.u1234.wl.sendgrid.net."
        )
    return target


@dataclass(frozen=True)
class DkimKeyChoices:
    """How the key gets published: the provider, the selector, and what the person pasted."""

    provider: str | None
    selector: str
    public_key: str | None = None  # a validated record from parse_public_key_input
    cname_target: str | None = None


def parse_selector_input(text: str) -> str:
    """A selector typed in the form, or FixInputError."""
    try:
        return validate_selector(text)
    except ValueError as error:
        raise FixInputError("selector", str(error)) from None


def propose_dkim_key(
    domain: str, choices: DkimKeyChoices, before: tuple[str, ...], clears: tuple[str, ...]
) -> Proposal:
    """The entries for a new or stronger key at the chosen selector, or the provider's steps
    when the value comes from the provider's console and has not been pasted yet."""
    provider: MailProvider | None = PROVIDERS_BY_KEY.get(choices.provider or "")
    selector = choices.selector
    host = key_host(selector, domain)
    steps = (
        provider.dkim_steps
        if provider
        else (
            "Generate a 2048-bit RSA key (or ed25519 beside it) in your mail server or provider, keep "
            "the private key there, and paste the public key record here."
        )
    )
    notes = (
        "The bot never creates or asks for a private key: it stays with your provider or signing server.",
    )
    fixed = [c for c in provider.dkim_cnames] if provider else []
    if fixed and not choices.public_key and not choices.cname_target:
        entries = tuple(
            DnsEntry(
                host=key_host(c.selector, domain), rdtype="CNAME", value=c.target_for(domain), zone=domain
            )
            for c in fixed
        )
        replaced = before if any(e.host == host for e in entries) else ()
        return Proposal(
            kind="dkim_key",
            domain=domain,
            host=entries[0].host,
            rdtype="CNAME",
            before=before,
            entries=entries,
            clears=clears,
            notes=notes,
            steps=steps,
            selector=fixed[0].selector,
            delete=replaced,
        )
    if choices.cname_target:
        entry = DnsEntry(host=host, rdtype="CNAME", value=choices.cname_target, zone=domain)
        # RFC 1034 §3.6.2: a CNAME cannot share its name with other records.
        return Proposal(
            kind="dkim_key",
            domain=domain,
            host=host,
            rdtype="CNAME",
            before=before,
            entries=(entry,),
            clears=clears,
            notes=notes,
            steps=steps,
            selector=selector,
            delete=before,
        )
    if choices.public_key:
        entry = DnsEntry(host=host, rdtype="TXT", value=choices.public_key, zone=domain)
        return Proposal(
            kind="dkim_key",
            domain=domain,
            host=host,
            rdtype="TXT",
            before=before,
            entries=(entry,),
            clears=clears,
            notes=notes,
            steps=steps,
            selector=selector,
        )
    return Proposal(
        kind="dkim_key",
        domain=domain,
        host=host,
        rdtype="TXT",
        before=before,
        entries=(),
        clears=clears,
        notes=notes,
        steps=steps,
        selector=selector,
    )


__all__ = [
    "DkimKeyChoices",
    "key_host",
    "parse_cname_target",
    "parse_public_key_input",
    "parse_selector_input",
    "propose_dkim_key",
    "propose_dkim_testing",
    "remove_testing_flag",
]
