"""Which identifiers can give mail from a domain an aligned pass (RFC 9989 §4.4).

They are the domain's own and, for a subdomain under relaxed alignment, its Organizational Domain's.

Under relaxed alignment (adkim=r, aspf=r, the defaults) an identifier aligns when its
Organizational Domain equals the From domain's (§4.4.1, §4.4.2), so mail from news.example.com
signed d=example.com, or sent with a MAIL FROM at example.com, aligns. Under strict alignment only
the identical name does. The Organizational Domain comes from the same DNS Tree Walk as the policy
(§4.10.2), so finding it costs no extra query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.dns.resolver import DnsSession
from handlers.domain.dkim_keys import DkimReport, check_dkim
from handlers.domain.dmarc_discovery import organizational_domain
from handlers.domain.dmarc_record import DmarcRecord
from handlers.domain.findings import Severity
from handlers.domain.spf import SpfReport, check_spf


@dataclass(frozen=True)
class AlignedPath:
    """One way mail from the domain can pass DMARC: an SPF pass or a DKIM key whose domain aligns."""

    via: str  # "spf" or "dkim"
    domain: str  # the MAIL FROM domain (SPF) or the signature's d= (DKIM)
    selector: str | None  # DKIM only
    relaxed: bool  # an Organizational Domain identifier: it aligns under relaxed alignment only

    def describe(self) -> str:
        """The path in a sentence's words, e.g. `DKIM d=example.com selector s1 (relaxed adkim)`."""
        if self.via == "spf":
            text = f"SPF for a MAIL FROM at {self.domain}" if self.relaxed else "SPF"
        else:
            text = (
                f"DKIM d={self.domain} selector {self.selector}"
                if self.relaxed
                else f"DKIM selector {self.selector}"
            )
        return f"{text} (relaxed a{self.via})" if self.relaxed else text

    def to_json(self) -> dict[str, object]:
        return {"via": self.via, "domain": self.domain, "selector": self.selector, "relaxed": self.relaxed}


@dataclass(frozen=True)
class OrganizationalIdentifiers:
    """What a subdomain's Organizational Domain publishes for the identifiers that can align with
    it: its SPF record and the DKIM keys at the same selectors."""

    domain: str  # the Organizational Domain
    spf: SpfReport
    dkim: DkimReport


def spf_can_pass(spf: SpfReport | None) -> bool:
    """Whether the SPF record can give a pass: it exists and evaluates without permerror."""
    if spf is None or spf.record is None:
        return False
    return not any(f.severity is Severity.ERROR and f.id != "spf.pass_all" for f in spf.findings)


def usable_dkim_selectors(dkim: DkimReport | None) -> list[str]:
    """Selectors whose key can verify a signature today (not revoked, valid, RSA of 1024 bits or
    more per RFC 8301, or Ed25519)."""
    if dkim is None:
        return []
    return [
        k.selector
        for k in dkim.keys
        if not k.revoked and not k.problems and (k.key_type == "ed25519" or (k.key_bits or 0) >= 1024)
    ]


def organizational_paths(
    record: DmarcRecord, identifiers: OrganizationalIdentifiers | None
) -> list[AlignedPath]:
    """The Organizational Domain's identifiers that align under `record`: SPF when aspf=r, DKIM
    keys when adkim=r (RFC 9989 §4.4); none under strict alignment."""
    if identifiers is None:
        return []
    paths = []
    if record.aspf != "s" and spf_can_pass(identifiers.spf):
        paths.append(AlignedPath("spf", identifiers.domain, None, relaxed=True))
    if record.adkim != "s":
        paths += [
            AlignedPath("dkim", identifiers.domain, selector, relaxed=True)
            for selector in usable_dkim_selectors(identifiers.dkim)
        ]
    return paths


async def organizational_identifiers(
    session: DnsSession, domain: str, selectors: Sequence[str] = ()
) -> OrganizationalIdentifiers | None:
    """For a name below its Organizational Domain, that domain's SPF and DKIM keys (the named
    selectors, or the common ones probed); None for an Organizational Domain itself, or when the
    walk failed (check_dmarc reports that outage)."""
    org = await organizational_domain(session, domain)
    if org.name is None or org.name == domain:
        return None
    spf, dkim = await asyncio.gather(check_spf(session, org.name), check_dkim(session, org.name, selectors))
    return OrganizationalIdentifiers(org.name, spf, dkim)
