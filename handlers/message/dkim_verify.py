"""Verify every DKIM-Signature of a message with dkimpy, and say why each one that fails fails.

dkimpy answers True/False; a person needs the reason. Each signature's key is fetched through our
DnsSession first (so an outage is temperror, never "no key": dkimpy reports a
SERVFAIL like a missing key) and classified (missing, revoked, invalid, weak); dkimpy then verifies
the signature with a `dnsfunc` that answers from the same session. dkimpy checks the body hash
(`bh=`) before the header signature (`b=`), so a `body hash mismatch` means the body changed, and a
False after it means the signed headers changed (RFC 6376 §6.1.3).

With the header block alone, the header signature is still checked: it covers the header fields
and the DKIM-Signature itself, `bh=` included, but not the body (RFC 6376 §3.7). The signature is
verified with `bh=` left out of dkimpy's body step, and the body hash is reported as not checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dkim
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError
from dkim.util import InvalidTagValueList, parse_tag_value

from handlers.dns.resolver import DnsSession, DnsStatus, Lookup
from handlers.domain.dkim_keys import InvalidSelector, inspect_public_key, validate_selector
from handlers.limits import (
    MAX_DKIM_B_CHARS,
    MAX_DKIM_BH_CHARS,
    MAX_DKIM_SIGNATURES,
    MAX_RSA_KEY_BITS,
    VERIFY_SECONDS_PER_SIGNATURE,
)
from handlers.message.parse import DkimSignatureTags, ParsedMessage

MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers must not accept RSA keys under 1024 bits
# RFC 6376 §3.5: d= is a domain name and s= a selector, both made of DNS labels of at most 63
# characters (RFC 1035 §2.3.4); the whole name at most 253.
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# reason ids (stable, in JSON output)
OK = "ok"
BODY_HASH_MISMATCH = "body_hash_mismatch"
HEADER_SIGNATURE_MISMATCH = "header_signature_mismatch"
KEY_MISSING = "key_missing"
KEY_REVOKED = "key_revoked"
KEY_INVALID = "key_invalid"
KEY_WEAK = "key_weak"
EXPIRED = "expired"
TEMPERROR = "temperror"
SIGNATURE_INVALID = "signature_invalid"  # the DKIM-Signature itself does not parse or is refused
NOT_VERIFIED = "not_verified"  # past the per-message cap, or over the time budget: result "policy"


@dataclass(frozen=True, kw_only=True)
class DkimResult:
    """One signature's verification: result (RFC 8601 §2.7.1), the reason, and what was checked."""

    index: int
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    result: str  # pass, fail, permerror, temperror
    reason: str  # one of the reason ids above
    detail: str
    body_hash: str  # "match", "mismatch", "not checked"
    key_record: str | None = None
    key_type: str | None = None
    key_bits: int | None = None
    key_testing: bool = False  # t=y on the key (RFC 6376 §3.6.1)
    signed_headers: tuple[str, ...] = ()
    outage: Lookup | None = None

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def to_json(self) -> dict[str, object]:
        return {
            "d": self.domain,
            "s": self.selector,
            "algorithm": self.algorithm,
            "result": self.result,
            "reason": self.reason,
            "detail": self.detail,
            "body_hash": self.body_hash,
            "key": self.key_name,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "key_testing": self.key_testing,
            "signed_headers": list(self.signed_headers),
        }


@dataclass(frozen=True, kw_only=True)
class _Key:
    lookup: Lookup
    record: str | None
    problem: str | None  # None: usable
    detail: str
    key_type: str | None
    bits: int | None
    testing: bool


async def verify_message(session: DnsSession, message: ParsedMessage) -> tuple[DkimResult, ...]:
    """Verify each DKIM-Signature of `message` (topmost first), with a reason for each failure.
    Past MAX_DKIM_SIGNATURES, each further signature is listed as not verified (result "policy",
    RFC 8601 §2.7.1: signed, but not acceptable to the verifier)."""
    total = len(message.dkim_signatures)
    count = min(total, MAX_DKIM_SIGNATURES)
    verified = await asyncio.gather(*(verify_signature(session, message, i) for i in range(count)))
    skipped = (
        _not_verified(
            message.dkim_signatures[i],
            f"not verified: the message carries {total} DKIM-Signatures and only the first "
            f"{MAX_DKIM_SIGNATURES} are verified.",
        )
        for i in range(count, total)
    )
    return (*verified, *skipped)


def _not_verified(tags: DkimSignatureTags, detail: str) -> DkimResult:
    return DkimResult(
        index=tags.index,
        domain=tags.domain,
        selector=tags.selector,
        algorithm=tags.algorithm,
        result="policy",
        reason=NOT_VERIFIED,
        detail=detail,
        body_hash="not checked",
        signed_headers=tags.signed_headers,
    )


def signature_problem(tags: DkimSignatureTags) -> str | None:
    """What makes a DKIM-Signature malformed before any lookup or decoding, or None. A malformed
    signature is a permanent failure (RFC 6376 §6.1.1), never a reason to retry later."""
    for tag, cap, why in (
        ("b", MAX_DKIM_B_CHARS, f"no RSA key of up to {MAX_RSA_KEY_BITS} bits makes a longer signature"),
        ("bh", MAX_DKIM_BH_CHARS, "a SHA-256 body hash is 44 characters"),
    ):
        length = len("".join(tags.tags.get(tag, "").split()))
        if length > cap:
            return f"{tag}= is {length} characters long, over the {cap} allowed ({why}); refused unverified"
    domain = tags.domain
    labels = domain.split(".")
    if domain and (len(domain) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels)):
        return (
            f"d={domain[:80]!r} is not a domain name (letters, digits and hyphens in labels of at "
            "most 63 characters, RFC 6376 §3.5)"
        )
    if tags.selector:
        try:
            validate_selector(tags.selector)
        except InvalidSelector:
            return (
                f"s={tags.selector[:80]!r} is not a selector (letters, digits, hyphens and dots in "
                "labels of at most 63 characters, RFC 6376 §3.1)"
            )
    return None


async def verify_signature(session: DnsSession, message: ParsedMessage, idx: int) -> DkimResult:
    """Verify the `idx`-th DKIM-Signature (0 = topmost), the way dkimpy's DKIM.verify(idx) does."""
    tags = message.dkim_signatures[idx]
    domain, selector, algorithm = tags.domain, tags.selector, tags.algorithm
    signed = tags.signed_headers

    def result(
        res: str,
        reason: str,
        detail: str,
        body: str = "not checked",
        key: _Key | None = None,
        outage: Lookup | None = None,
    ) -> DkimResult:
        return DkimResult(
            index=idx,
            domain=domain,
            selector=selector,
            algorithm=algorithm,
            result=res,
            reason=reason,
            detail=detail,
            body_hash=body,
            key_record=key.record if key else None,
            key_type=key.key_type if key else None,
            key_bits=key.bits if key else None,
            key_testing=key.testing if key else False,
            signed_headers=signed,
            outage=outage,
        )

    malformed = signature_problem(tags)
    if malformed is not None:
        return result("permerror", SIGNATURE_INVALID, f"the DKIM-Signature is not valid: {malformed}.")
    try:
        checker = dkim.DKIM(message.raw, minkey=MIN_RSA_BITS)
        prep = checker.verify_headerprep(idx)
    except dkim.ValidationError as error:
        expires = tags.tags.get("x", "")
        if expires.isascii() and expires.isdigit() and int(expires) < time.time():
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(expires)))
            return result(
                "permerror",
                EXPIRED,
                f"the signature expired at {when} (x=); "
                "receivers may refuse it after that time (RFC 6376 §3.5).",
            )
        return result("permerror", SIGNATURE_INVALID, f"the DKIM-Signature is not valid: {error}.")
    except dkim.MessageFormatError as error:
        return result("permerror", SIGNATURE_INVALID, f"the DKIM-Signature does not parse: {error}.")
    if not prep or not domain or not selector:
        return result("permerror", SIGNATURE_INVALID, "the DKIM-Signature has no d= or s=.")
    sig, include_headers, sigheaders = prep

    key = await _fetch_key(session, f"{selector}._domainkey.{domain}")
    if key.lookup.is_cname_loop:
        return result(
            "permerror",
            KEY_MISSING,
            f"the key name {key.lookup.name} is a CNAME chain that loops "
            f"({' → '.join(key.lookup.cname_chain)}): a zone error, so no key can be found.",
            key=key,
        )
    if key.lookup.is_outage:
        return result(
            "temperror",
            TEMPERROR,
            f"the key lookup failed: {key.lookup.describe_failure()}; the result is unknown, not a failure.",
            key=key,
            outage=key.lookup,
        )
    if key.problem is not None:
        return result("permerror", key.problem, key.detail, key=key)

    body_checked = _body_present(message, sig)
    if not body_checked:
        sig = {k: v for k, v in sig.items() if k != b"bh"}  # dkimpy skips the body step without bh

    def run() -> bool:
        # dkimpy calls dnsfunc synchronously; this worker thread waits on the session's loop.
        return bool(checker.verify_sig(sig, list(include_headers), sigheaders[idx], _dnsfunc(session)))

    body_state = "match" if body_checked else "not checked"
    try:
        # A worker thread, never the thread that acknowledges Slack; the key and signature caps
        # bound its work to milliseconds, and the budget gives up waiting on anything slower.
        verified = await asyncio.wait_for(asyncio.to_thread(run), VERIFY_SECONDS_PER_SIGNATURE)
    except TimeoutError:
        return _not_verified(
            tags,
            f"not verified: verification took longer than {VERIFY_SECONDS_PER_SIGNATURE:g} s "
            "and was abandoned.",
        )
    except dkim.ValidationError as error:
        if "body hash mismatch" in str(error):
            header_note = await _header_note(session, checker, sig, include_headers, sigheaders[idx])
            return result(
                "fail",
                BODY_HASH_MISMATCH,
                f"the body hash (bh=) does not match: the body changed after signing{header_note}.",
                "mismatch",
                key,
            )
        return result(
            "permerror", SIGNATURE_INVALID, f"dkimpy refused the signature: {error}.", body_state, key
        )
    except dkim.KeyFormatError as error:
        return result("permerror", KEY_INVALID, f"the key is not usable: {error}.", body_state, key)
    except dkim.DKIMException as error:
        return result(
            "permerror", SIGNATURE_INVALID, f"the signature could not be checked: {error}.", body_state, key
        )
    if verified:
        detail = "the signature verifies" + (
            ""
            if body_checked
            else " for the headers; the body was not given, so its hash (bh=) was not checked"
        )
        return result("pass", OK, detail + ".", body_state, key)
    return result(
        "fail",
        HEADER_SIGNATURE_MISMATCH,
        (
            "the body hash matches but the signature does not verify: "
            if body_checked
            else "the header signature does not verify: "
        )
        + f"a signed header ({', '.join(dict.fromkeys(signed))}) changed after signing.",
        body_state,
        key,
    )


async def _header_note(
    session: DnsSession,
    checker: dkim.DKIM,
    sig: dict[bytes, bytes],
    include_headers: list[bytes],
    sig_header: tuple[bytes, bytes],
) -> str:
    """Whether the headers still verify when the body does not: a footer added, headers intact."""
    headers_only = {k: v for k, v in sig.items() if k != b"bh"}

    def run() -> bool:
        return bool(checker.verify_sig(headers_only, list(include_headers), sig_header, _dnsfunc(session)))

    try:
        intact = await asyncio.to_thread(run)
    except dkim.DKIMException:
        return ""
    return "; the signed headers are intact" if intact else "; the signed headers changed too"


def _dnsfunc(session: DnsSession):  # type: ignore[no-untyped-def]
    """dkimpy's dnsfunc(name, timeout): the key TXT as bytes, None when there is none, and
    DnsTimeoutError for an outage, so dkimpy never reads an outage as a missing key."""

    def lookup_txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", errors="replace") if isinstance(name, bytes) else name
        lookup = session.lookup_blocking(text, "TXT")
        if lookup.is_outage:
            raise dkim.DnsTimeoutError(lookup.describe_failure())
        if not lookup.records:
            return None
        return lookup.records[0].encode("utf-8")

    return lookup_txt


async def _fetch_key(session: DnsSession, name: str) -> _Key:
    lookup = await session.lookup(name, "TXT")
    if lookup.is_outage:
        return _Key(
            lookup=lookup, record=None, problem=None, detail="", key_type=None, bits=None, testing=False
        )
    if lookup.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA) or not lookup.records:
        return _Key(
            lookup=lookup,
            record=None,
            problem=KEY_MISSING,
            detail=f"no key is published at {name} ({lookup.describe_failure()}).",
            key_type=None,
            bits=None,
            testing=False,
        )
    record = lookup.records[0]
    try:
        tags = parse_tag_value(record.encode("utf-8"))
    except InvalidTagValueList as error:
        return _Key(
            lookup=lookup,
            record=record,
            problem=KEY_INVALID,
            detail=f"the key record at {name} does not parse: {error}.",
            key_type=None,
            bits=None,
            testing=False,
        )
    testing = b"y" in tags.get(b"t", b"").split(b":")
    if b"p" not in tags:
        return _Key(
            lookup=lookup,
            record=record,
            problem=KEY_INVALID,
            detail=f"the record at {name} has no p= tag, so it is not a DKIM key (RFC 6376 §3.6.1).",
            key_type=None,
            bits=None,
            testing=testing,
        )
    if not tags[b"p"].strip():
        # RFC 6376 §3.6.1: "An empty value means that this public key has been revoked."
        return _Key(
            lookup=lookup,
            record=record,
            problem=KEY_REVOKED,
            detail=f"the key at {name} is revoked (empty p=).",
            key_type=None,
            bits=None,
            testing=testing,
        )
    if tags.get(b"k", b"rsa").strip().lower() == b"rsa":
        # Our own reading first (C code): an outsized key never reaches dkimpy's arithmetic.
        bits, problem = inspect_public_key("rsa", "".join(tags[b"p"].decode("ascii", "replace").split()))
        if problem is not None and bits is not None:
            return _Key(
                lookup=lookup,
                record=record,
                problem=KEY_INVALID,
                detail=f"the key at {name} is refused: {problem}.",
                key_type="rsa",
                bits=bits,
                testing=testing,
            )
    try:
        _pk, bits, ktag, _tlsrpt = dkim.evaluate_pk(
            name.encode("ascii", errors="replace"), record.encode("utf-8")
        )
    except (dkim.KeyFormatError, ValueError) as error:
        return _Key(
            lookup=lookup,
            record=record,
            problem=KEY_INVALID,
            detail=f"the key at {name} is not valid: {error}.",
            key_type=None,
            bits=None,
            testing=testing,
        )
    key_type = ktag.decode("ascii") if isinstance(ktag, bytes) else None
    if key_type == "rsa" and bits is not None and bits < MIN_RSA_BITS:
        return _Key(
            lookup=lookup,
            record=record,
            problem=KEY_WEAK,
            detail=f"the RSA key at {name} has {bits} bits; RFC 8301 "
            f"§3.2 requires receivers to refuse keys under {MIN_RSA_BITS} bits.",
            key_type=key_type,
            bits=bits,
            testing=testing,
        )
    return _Key(
        lookup=lookup, record=record, problem=None, detail="", key_type=key_type, bits=bits, testing=testing
    )


def _body_present(message: ParsedMessage, sig: dict[bytes, bytes]) -> bool:
    """True when the body was given. A header block alone has none; an empty body counts as
    given only when bh= is the hash of an empty body (so it really was empty when signed)."""
    if not message.has_body:
        return False
    if message.body_size > 0:
        return True
    try:
        policy = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError:
        return True
    digest = hashlib.sha1 if sig.get(b"a", b"").endswith(b"sha1") else hashlib.sha256
    empty = base64.b64encode(digest(policy.canonicalize_body(b"")).digest())
    return b"".join(sig.get(b"bh", b"").split()) == empty


def passed_domains(results: Sequence[DkimResult]) -> tuple[str, ...]:
    """The d= of every signature that verified, once each, in message order."""
    return tuple(dict.fromkeys(r.domain for r in results if r.passed))


__all__ = ["DkimResult", "passed_domains", "verify_message", "verify_signature"]
