"""Why did this message pass or fail DMARC? The whole verdict for one message, with its causes.

The pieces: SPF for the MAIL FROM domain and the connecting IP (from the caller's flags, else the
receiver's Received-SPF / Authentication-Results, else computed from the first external hop of the
Received chain; `ip_source` says which), every DKIM signature verified with its reason, the DMARC
result and policy (RFC 9989), alignment for each identifier, and the causes of the
"Message diagnosis" table with a fix for each. When the message carries the receiver's
Authentication-Results, every place our recomputation differs from it is listed, with the likely
reason (a key rotated since, a record changed since, the message changed after delivery).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, replace

from handlers.dns.resolver import DnsSession
from handlers.domain.dmarc_discovery import organizational_domain
from handlers.message.dkim_verify import (
    BODY_HASH_MISMATCH,
    HEADER_SIGNATURE_MISMATCH,
    KEY_INVALID,
    KEY_MISSING,
    KEY_REVOKED,
    KEY_WEAK,
    TEMPERROR,
    DkimResult,
    passed_domains,
    verify_message,
)
from handlers.message.dmarc_verdict import Alignment, DmarcVerdict, align, evaluate_dmarc
from handlers.message.parse import AuthResults, ParsedMessage, ReceivedHop, ReceivedSpf
from handlers.message.spf_eval import SpfVerdict, evaluate_spf

SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")


@dataclass(frozen=True)
class CauseKind:
    title: str
    fix: str


# The cause ids are a public interface (JSON output, the README's table): never rename one.
CAUSES: dict[str, CauseKind] = {
    "cause.spf_not_aligned": CauseKind(
        "SPF passed, but for a domain not aligned with the From domain",
        "Have the sender use a bounce (Return-Path) domain under your From domain (a custom "
        "MAIL FROM / return-path setting at the provider), or rely on an aligned DKIM signature.",
    ),
    "cause.spf_ip_not_authorized": CauseKind(
        "The sending IP is not authorised by SPF",
        "Add the sender to the SPF record of the envelope domain (its include: or ip4:/ip6:), "
        "or send through a server that is already listed.",
    ),
    "cause.spf_error": CauseKind(
        "SPF could not be evaluated (permerror or temperror)",
        "Fix the SPF record (run `dmarcbot check` on the domain); for a temperror, check that "
        "the domain's nameservers answer.",
    ),
    "cause.dkim_not_aligned": CauseKind(
        "A DKIM signature passed, but its d= is not aligned with the From domain",
        "Configure the sending service to sign with your domain (publish the selector it gives "
        "you under your From domain), so d= matches the From domain.",
    ),
    "cause.dkim_body_modified": CauseKind(
        "The body changed after signing (body hash mismatch)",
        "Find what rewrites the body (a mailing-list footer, a gateway's disclaimer or link "
        "rewriting, forwarding); stop it, or make the list sign with its own aligned domain and "
        "rewrite From; receivers that honour ARC may accept it from a trusted forwarder.",
    ),
    "cause.dkim_header_modified": CauseKind(
        "A signed header changed after signing",
        "Find what edits the headers (a list's [tag] in Subject, a gateway); stop it, or sign "
        "fewer headers at the source.",
    ),
    "cause.dkim_key_missing": CauseKind(
        "No DKIM key at the signature's selector",
        "Publish the public key your provider gives you at SELECTOR._domainkey.DOMAIN (the "
        "s= and d= of the signature), exactly as given.",
    ),
    "cause.dkim_key_invalid": CauseKind(
        "The DKIM key is revoked, malformed or too weak",
        "Publish a valid key for the selector (RSA of 2048 bits, or ed25519 alongside it), or "
        "switch signing to a selector whose key is published.",
    ),
    "cause.no_dkim_signature": CauseKind(
        "The message carries no DKIM signature",
        "Turn on DKIM signing for your domain at every service that sends as it.",
    ),
    "cause.forwarded": CauseKind(
        "The message passed through a forwarder or mailing list",
        "Forwarding breaks SPF, and lists often break DKIM: rely on an aligned DKIM signature "
        "that survives forwarding (no body or header edits on the way).",
    ),
    "cause.dns_temperror": CauseKind(
        "A DNS lookup failed, so the result is temperror, not fail",
        "Retry later; if it persists, check that the domain's nameservers answer.",
    ),
    "cause.no_dmarc_record": CauseKind(
        "The From domain publishes no DMARC record",
        'Publish a TXT record at _dmarc.DOMAIN such as "v=DMARC1; p=none; rua=mailto:dmarc-reports@DOMAIN".',
    ),
}


@dataclass(frozen=True)
class Cause:
    """One reason the message fails (or nearly fails) DMARC, with a fix."""

    id: str
    title: str
    detail: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "detail": self.detail, "fix": self.fix}


def cause(cause_id: str, detail: str, fix: str | None = None) -> Cause:
    """A cause from the catalog; `fix` replaces the default with a more specific one."""
    kind = CAUSES[cause_id]
    return Cause(cause_id, kind.title, detail, fix or kind.fix)


@dataclass(frozen=True, kw_only=True)
class SpfOutcome:
    """The SPF result used for DMARC, and where the result and the IP came from."""

    result: str | None  # None: no IP known, nothing to evaluate
    domain: str | None  # the identity checked: the MAIL FROM domain, or HELO for a null sender
    identity: str  # "mailfrom" or "helo"
    mail_from: str | None
    helo: str | None
    ip: str | None
    ip_source: str  # "flag", "received-spf", "received", "authentication-results", "unknown"
    ip_detail: str
    result_source: str  # "computed" or "receiver"
    explanation: str = ""
    aligned: bool | None = None
    recomputed: SpfVerdict | None = None  # ours, when the result shown is the receiver's

    def identity_text(self) -> str:
        """Which identity SPF evaluated, and why that one, in words. RFC 7208 §2.4: with an empty
        MAIL FROM (a bounce) SPF checks the HELO identity; DMARC alignment (RFC 9989 §4.4.2) uses
        the MAIL FROM identity only, so a HELO result never aligns."""
        if self.identity == "mailfrom":
            return f"{self.domain} (the MAIL FROM domain)"
        if self.domain:
            return (
                f"{self.domain} (the HELO name: the MAIL FROM is empty, so SPF checks the HELO identity, "
                "RFC 7208 §2.4; a HELO result never counts for DMARC alignment)"
            )
        return (
            "no identity: the MAIL FROM is empty and no HELO name is known, and with an empty MAIL FROM "
            "SPF checks the HELO name (RFC 7208 §2.4)"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "result": self.result,
            "domain": self.domain,
            "aligned": self.aligned,
            "ip": self.ip,
            "ip_source": self.ip_source,
            "ip_detail": self.ip_detail,
            "identity": self.identity,
            "mail_from": self.mail_from,
            "helo": self.helo,
            "result_source": self.result_source,
            "explanation": self.explanation,
            "recomputed": self.recomputed.result if self.recomputed else None,
        }


@dataclass(frozen=True)
class Difference:
    """Where our recomputation differs from the receiver's Authentication-Results, and why."""

    what: str  # "spf", "dkim d=… s=…", "dmarc"
    receiver: str
    ours: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"what": self.what, "receiver": self.receiver, "ours": self.ours, "why": self.why}


@dataclass(frozen=True, kw_only=True)
class MessageVerdict:
    """Everything `dmarcbot why` reports for one message."""

    from_domain: str
    from_address: str
    dmarc: DmarcVerdict
    spf: SpfOutcome
    dkim: tuple[DkimResult, ...]
    dkim_alignment: tuple[Alignment | None, ...]  # parallel to dkim
    causes: tuple[Cause, ...]
    differences: tuple[Difference, ...]
    receiver: str | None  # the authserv-id whose results were read
    forwarding: tuple[str, ...]  # the evidence that a forwarder or list handled the message
    headers_only: bool

    @property
    def passed(self) -> bool:
        return self.dmarc.passed

    def to_json(self) -> dict[str, object]:
        return {
            "from_domain": self.from_domain,
            "from_address": self.from_address,
            "dmarc": self.dmarc.to_json(),
            "spf": self.spf.to_json(),
            "dkim": [
                {**r.to_json(), "aligned": a.aligned if a else None, "alignment": a.mode if a else None}
                for r, a in zip(self.dkim, self.dkim_alignment, strict=True)
            ],
            "causes": [c.to_json() for c in self.causes],
            "receiver_differences": [d.to_json() for d in self.differences],
            "receiver": self.receiver,
            "forwarding": list(self.forwarding),
            "headers_only": self.headers_only,
        }


async def diagnose_message(
    session: DnsSession,
    message: ParsedMessage,
    *,
    ip: str | None = None,
    helo: str | None = None,
    mail_from: str | None = None,
) -> MessageVerdict:
    """The DMARC verdict for `message`, its causes and the differences from the receiver's."""
    receiver = _receiver_results(message)
    (spf, dkim_results) = await asyncio.gather(
        _spf_outcome(session, message, receiver, ip, helo, mail_from), verify_message(session, message)
    )
    spf_input = (spf.domain, spf.result) if spf.identity == "mailfrom" and spf.domain and spf.result else None
    dmarc = await evaluate_dmarc(session, message.from_domain, spf_input, passed_domains(dkim_results))
    # HELO never aligns (RFC 9989 §4.4.2 uses the MAIL FROM identity only).
    spf_aligned = dmarc.spf.aligned if dmarc.spf is not None else (False if spf.domain else None)
    spf = replace(spf, aligned=spf_aligned)
    strict = dmarc.record is not None and dmarc.record.adkim == "s"
    from_org = await organizational_domain(session, message.from_domain)
    alignments = tuple(
        await asyncio.gather(
            *(
                align(session, "dkim", message.from_domain, from_org, r.domain, r.passed, strict)
                for r in dkim_results
                if r.domain
            )
        )
    )
    dkim_alignment = _pad(dkim_results, alignments)
    dmarc = _temperror_if_unknown(dmarc, spf, dkim_results, dkim_alignment)
    forwarding = forwarding_evidence(message)
    causes = _causes(message, dmarc, spf, dkim_results, dkim_alignment, forwarding)
    differences = _differences(receiver, spf, dkim_results, dmarc) if receiver else ()
    return MessageVerdict(
        from_domain=message.from_domain,
        from_address=message.from_address,
        dmarc=dmarc,
        spf=spf,
        dkim=dkim_results,
        dkim_alignment=dkim_alignment,
        causes=tuple(causes),
        differences=tuple(differences),
        receiver=receiver.authserv_id if receiver else None,
        forwarding=forwarding,
        headers_only=not message.has_body,
    )


def _temperror_if_unknown(
    dmarc: DmarcVerdict,
    spf: SpfOutcome,
    results: tuple[DkimResult, ...],
    alignments: tuple[Alignment | None, ...],
) -> DmarcVerdict:
    """A fail is only a fail when nothing that could have aligned is unknown: an aligned DKIM
    signature whose key lookup failed, or an aligned SPF temperror, makes it temperror."""
    if dmarc.result != "fail":
        return dmarc
    unknown = [
        r
        for r, a in zip(results, alignments, strict=True)
        if r.result == "temperror" and (a is None or a.aligned is not False)
    ]
    if unknown:
        return replace(
            dmarc,
            result="temperror",
            outage=unknown[0].outage,
            reason=f"the key lookup for the aligned signature d={unknown[0].domain} "
            f"s={unknown[0].selector} failed, so the result is unknown",
        )
    if spf.result == "temperror" and spf.aligned is not False:
        return replace(
            dmarc,
            result="temperror",
            reason=f"SPF for {spf.domain} ended in temperror, so the result is unknown",
        )
    return dmarc


def _pad(results: tuple[DkimResult, ...], alignments: tuple[Alignment, ...]) -> tuple[Alignment | None, ...]:
    found = iter(alignments)
    return tuple(next(found) if r.domain else None for r in results)


# -- SPF: flags, then the receiver's headers, then the Received chain -----------------------------


def _receiver_results(message: ParsedMessage) -> AuthResults | None:
    """The topmost Authentication-Results with a result in it: the final receiver's (RFC 8601 §5:
    only the receiving ADMD's own field can be trusted; it is added last, so on top)."""
    return next((ar for ar in message.authentication_results if ar.methods), None)


def first_external_hop(message: ParsedMessage) -> ReceivedHop | None:
    """The topmost Received whose connecting IP is public: where the mail entered the receiver."""
    return next((hop for hop in message.received if hop.ip_is_public), None)


async def _spf_outcome(
    session: DnsSession,
    message: ParsedMessage,
    receiver: AuthResults | None,
    ip: str | None,
    helo: str | None,
    mail_from: str | None,
) -> SpfOutcome:
    received_spf: ReceivedSpf | None = message.received_spf[0] if message.received_spf else None
    receiver_spf = receiver.first("spf") if receiver else None
    if mail_from is None:
        mail_from = message.return_path
    if mail_from is None and received_spf is not None:
        mail_from = received_spf.pairs.get("envelope-from")
    if mail_from is None and receiver_spf is not None:
        mail_from = receiver_spf.properties.get("smtp.mailfrom")
    hop = first_external_hop(message)
    if helo is None:
        helo = (received_spf.pairs.get("helo") if received_spf else None) or (hop.helo if hop else None)
    mail_from = (mail_from or "").strip().strip("<>")
    domain, identity = _identity(mail_from, helo or "")

    def outcome(
        result: str | None,
        ip_used: str | None,
        ip_source: str,
        ip_detail: str,
        source: str,
        explanation: str = "",
        recomputed: SpfVerdict | None = None,
    ) -> SpfOutcome:
        return SpfOutcome(
            result=result,
            domain=domain or None,
            identity=identity,
            mail_from=mail_from or None,
            helo=helo,
            ip=ip_used,
            ip_source=ip_source,
            ip_detail=ip_detail,
            result_source=source,
            explanation=explanation,
            aligned=None,
            recomputed=recomputed,
        )

    if ip is not None:
        verdict = await evaluate_spf(session, ip, mail_from, helo or "")
        return outcome(verdict.result, ip, "flag", "given with --ip", "computed", verdict.explanation)

    client_ip = _valid_ip(received_spf.pairs.get("client-ip")) if received_spf else None
    chain_ip = hop.ip if hop else None
    if client_ip:
        ip_used, ip_source, ip_detail = (
            client_ip,
            "received-spf",
            "client-ip= of the receiver's Received-SPF header",
        )
    elif chain_ip and hop is not None:
        ip_used, ip_source = chain_ip, "received"
        ip_detail = (
            f"Received header #{hop.index + 1} (from {hop.helo or '?'} by "
            f"{hop.by or '?'}): the first hop from a public address"
        )
    else:
        ip_used, ip_source, ip_detail = (
            None,
            "unknown",
            "no public IP in the Received chain; pass --ip to evaluate SPF",
        )

    receiver_result = None
    receiver_source = ""
    if received_spf is not None and received_spf.result in SPF_RESULTS:
        receiver_result, receiver_source = received_spf.result, "Received-SPF"
    elif receiver_spf is not None and receiver_spf.result in SPF_RESULTS:
        receiver_result, receiver_source = receiver_spf.result, "Authentication-Results"
        if ip_used is None:
            ip_source = "authentication-results"
    recomputed = None
    if ip_used is not None and (mail_from or helo):
        recomputed = await evaluate_spf(session, ip_used, mail_from, helo or "")
    if receiver_result is not None:
        return outcome(
            receiver_result,
            ip_used,
            ip_source,
            ip_detail,
            "receiver",
            f"as the receiver recorded it in {receiver_source}",
            recomputed,
        )
    if recomputed is not None:
        return outcome(recomputed.result, ip_used, ip_source, ip_detail, "computed", recomputed.explanation)
    return outcome(
        None, ip_used, ip_source, ip_detail, "computed", "no connecting IP is known, so SPF was not evaluated"
    )


def _identity(mail_from: str, helo: str) -> tuple[str, str]:
    # RFC 7208 §2.4: a null MAIL FROM is checked as postmaster@HELO.
    if mail_from:
        return mail_from.rpartition("@")[2].lower().rstrip("."), "mailfrom"
    return helo.lower().rstrip("."), "helo"


def _valid_ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


# -- causes ---------------------------------------------------------------------------------------


def forwarding_evidence(message: ParsedMessage) -> tuple[str, ...]:
    """What shows a forwarder or list handled the message: ARC seals, List-*, Resent-*, X-Forwarded-*."""
    evidence = []
    if message.arc_seals:
        sealers = ", ".join(dict.fromkeys(s.domain for s in message.arc_seals if s.domain))
        evidence.append(f"{len(message.arc_seals)} ARC seal(s) (RFC 8617) by {sealers or '?'}")
    if message.list_headers:
        evidence.append(f"mailing-list headers: {', '.join(message.list_headers)}")
    if message.forward_headers:
        evidence.append(f"forwarding headers: {', '.join(message.forward_headers)}")
    return tuple(evidence)


def _causes(
    message: ParsedMessage,
    dmarc: DmarcVerdict,
    spf: SpfOutcome,
    dkim_results: tuple[DkimResult, ...],
    dkim_alignment: tuple[Alignment | None, ...],
    forwarding: tuple[str, ...],
) -> list[Cause]:
    causes: list[Cause] = []
    from_domain = message.from_domain
    if dmarc.result == "none" and dmarc.outage is None:
        causes.append(
            cause(
                "cause.no_dmarc_record",
                f"{from_domain}: {dmarc.reason}; receivers apply no DMARC policy, so the result is none.",
                fix=f"Publish a TXT record at _dmarc.{dmarc.org_domain or from_domain}: "
                '"v=DMARC1; p=none; rua=mailto:dmarc-reports@'
                f'{dmarc.org_domain or from_domain}", then tighten it.',
            )
        )
    temperrors = []
    if dmarc.outage is not None and all(dmarc.outage is not r.outage for r in dkim_results):
        temperrors.append(dmarc.outage.describe_failure())
    temperrors += [
        f"DKIM key {r.key_name}: {r.outage.describe_failure()}" for r in dkim_results if r.outage is not None
    ]
    if spf.result == "temperror":
        temperrors.append(f"SPF for {spf.domain}: {spf.explanation or 'DNS failed'}")
    if temperrors:
        causes.append(
            cause(
                "cause.dns_temperror",
                "; ".join(temperrors) + ". The result is "
                "unknown until the lookup succeeds; it is not a failure.",
            )
        )

    if spf.result == "pass" and spf.aligned is False:
        why = (
            "HELO never aligns (RFC 9989 uses the MAIL FROM identity only)"
            if spf.identity == "helo"
            else f"{spf.domain} is not {_relation(_strict(dmarc, 'aspf'))} {from_domain}"
        )
        causes.append(
            cause(
                "cause.spf_not_aligned",
                f"SPF passed for {spf.domain} (IP {spf.ip or 'unknown'}), but {why}"
                f"{' (aspf=s: strict alignment)' if _strict(dmarc, 'aspf') else ''}.",
            )
        )
    if spf.result in ("fail", "softfail", "neutral"):
        aligned_note = (
            ""
            if spf.aligned
            else (
                f" ({spf.domain} is not aligned with {from_domain} either, so even a pass "
                "would not count for DMARC)"
            )
        )
        causes.append(
            cause(
                "cause.spf_ip_not_authorized",
                f"SPF {spf.result} for {spf.domain}: the IP {spf.ip} ({spf.ip_detail}) "
                f"is not authorised by its SPF record{aligned_note}.",
                fix=f"If {spf.ip} is one of your senders, add it (or its provider's "
                f"include:) to the SPF record of {spf.domain}. If the message was "
                "forwarded, SPF cannot pass: rely on aligned DKIM.",
            )
        )
    if spf.result in ("permerror", "temperror"):
        causes.append(
            cause(
                "cause.spf_error",
                f"SPF {spf.result} for {spf.domain}{': ' + spf.explanation if spf.explanation else ''}.",
            )
        )

    if not dkim_results:
        causes.append(
            cause(
                "cause.no_dkim_signature",
                "The message has no DKIM-Signature header, so only SPF can make "
                "DMARC pass, and SPF does not survive forwarding.",
            )
        )
    for result, alignment in zip(dkim_results, dkim_alignment, strict=True):
        label = f"d={result.domain} s={result.selector}"
        aligned_note = _aligned_note(alignment, from_domain)
        if result.passed and alignment is not None and alignment.aligned is False:
            causes.append(
                cause(
                    "cause.dkim_not_aligned",
                    f"The signature {label} verifies, but {result.domain} is not "
                    f"{_relation(alignment.strict)} {from_domain}"
                    f"{' (adkim=s)' if alignment.strict else ''}.",
                )
            )
        elif result.reason == BODY_HASH_MISMATCH:
            causes.append(
                cause("cause.dkim_body_modified", f"The signature {label}{aligned_note}: {result.detail}")
            )
        elif result.reason == HEADER_SIGNATURE_MISMATCH:
            causes.append(
                cause("cause.dkim_header_modified", f"The signature {label}{aligned_note}: {result.detail}")
            )
        elif result.reason == KEY_MISSING:
            causes.append(
                cause(
                    "cause.dkim_key_missing",
                    f"The signature {label}{aligned_note}: {result.detail}",
                    fix=f"Publish the public key at {result.key_name} exactly as "
                    "your mail provider gives it, or have it sign with a "
                    "selector that is published.",
                )
            )
        elif result.reason in (KEY_REVOKED, KEY_INVALID, KEY_WEAK):
            causes.append(
                cause(
                    "cause.dkim_key_invalid",
                    f"The signature {label}{aligned_note}: {result.detail}",
                    fix=f"Publish a valid key at {result.key_name} (RSA 2048 bits or "
                    "ed25519), or move signing to a selector whose key is valid.",
                )
            )
    if forwarding:
        causes.append(
            cause(
                "cause.forwarded",
                "The message passed through a forwarder or list: "
                + "; ".join(forwarding)
                + ". Forwarding makes SPF fail for the "
                "original sender's domain, and lists often change the body or "
                "Subject, breaking DKIM.",
            )
        )
    return causes


def _relation(strict: bool) -> str:
    return "identical to" if strict else "in the same organizational domain as"


def _strict(dmarc: DmarcVerdict, tag: str) -> bool:
    return dmarc.record is not None and getattr(dmarc.record, tag) == "s"


def _aligned_note(alignment: Alignment | None, from_domain: str) -> str:
    if alignment is None or alignment.aligned is None:
        return ""
    return (
        " (aligned with the From domain, so it would have made DMARC pass)"
        if alignment.aligned
        else f" (not aligned with {from_domain} anyway)"
    )


# -- the receiver's Authentication-Results against ours ---------------------------------------


def _differences(
    receiver: AuthResults, spf: SpfOutcome, dkim_results: tuple[DkimResult, ...], dmarc: DmarcVerdict
) -> list[Difference]:
    found: list[Difference] = []
    theirs_spf = receiver.first("spf")
    if theirs_spf is not None and spf.recomputed is not None and theirs_spf.result != spf.recomputed.result:
        found.append(
            Difference(
                "spf",
                theirs_spf.result,
                spf.recomputed.result,
                f"recomputed for {spf.ip} ({spf.ip_source}): the SPF record of {spf.domain} has "
                "probably changed since delivery, or the receiver saw a different IP",
            )
        )
    for method in receiver.all("dkim"):
        domain = (
            method.properties.get("header.d") or method.properties.get("header.i", "").rpartition("@")[2]
        ).lower()
        selector = method.properties.get("header.s", "")
        ours = _match_signature(dkim_results, domain, selector)
        if ours is None or ours.result == method.result:
            continue
        found.append(
            Difference(
                f"dkim d={ours.domain} s={ours.selector}",
                method.result,
                ours.result,
                _dkim_why(method.result, ours),
            )
        )
    theirs_dmarc = receiver.first("dmarc")
    if theirs_dmarc is not None and theirs_dmarc.result != dmarc.result:
        inputs_changed = bool(found)
        found.append(
            Difference(
                "dmarc",
                theirs_dmarc.result,
                dmarc.result,
                "follows from the SPF/DKIM differences above"
                if inputs_changed
                else f"the DMARC record for {dmarc.from_domain} has probably changed since delivery"
                f" (now: {dmarc.record.raw if dmarc.record else 'none'})",
            )
        )
    return found


def _match_signature(results: tuple[DkimResult, ...], domain: str, selector: str) -> DkimResult | None:
    return next((r for r in results if r.domain == domain and (not selector or r.selector == selector)), None)


def _dkim_why(theirs: str, ours: DkimResult) -> str:
    if theirs == "pass" and ours.reason in (KEY_MISSING, KEY_REVOKED):
        return (
            f"the key at {ours.key_name} was removed or revoked since delivery (a key "
            "rotation): the signature was valid when the message arrived"
        )
    if theirs == "pass" and ours.reason in (KEY_INVALID, KEY_WEAK):
        return f"the key at {ours.key_name} has been replaced since delivery by one that is not usable"
    if theirs == "pass" and ours.reason in (BODY_HASH_MISMATCH, HEADER_SIGNATURE_MISMATCH):
        return (
            "the message changed after the receiver checked it (saved or exported by a mail "
            "client, re-encoded, or pasted with altered line breaks or spacing)"
        )
    if theirs == "pass" and ours.reason == TEMPERROR:
        return "our key lookup failed: retry"
    if ours.passed:
        return (
            f"the receiver could not verify it then (a DNS failure, or the key at "
            f"{ours.key_name} was published or fixed since delivery)"
        )
    return f"our check found: {ours.detail}"


__all__ = [
    "CAUSES",
    "Cause",
    "Difference",
    "MessageVerdict",
    "SpfOutcome",
    "diagnose_message",
    "first_external_hop",
    "forwarding_evidence",
]
