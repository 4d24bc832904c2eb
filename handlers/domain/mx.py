"""The MX part of a domain check: where the domain receives mail (and so reports and bounces)."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.dns.resolver import DnsSession
from handlers.domain.findings import Finding, finding, temperror_finding


@dataclass(frozen=True)
class MxHost:
    preference: int
    host: str


@dataclass(frozen=True)
class MxReport:
    """The MX hosts by preference; `null_mx` when the domain says it takes no mail (RFC 7505)."""

    domain: str
    hosts: tuple[MxHost, ...]
    null_mx: bool
    findings: tuple[Finding, ...]

    def to_json(self) -> list[dict[str, object]]:
        return [{"preference": h.preference, "host": h.host} for h in self.hosts]


async def check_mx(session: DnsSession, domain: str) -> MxReport:
    """Read the domain's MX records; a missing MX is info, an outage is `dns.temperror`."""
    lookup = await session.lookup(domain, "MX")
    if lookup.is_outage:
        return MxReport(domain, (), False, (temperror_finding(lookup),))
    hosts = []
    for text in lookup.records:
        preference, _, host = text.partition(" ")
        hosts.append(MxHost(int(preference), host))
    hosts.sort(key=lambda h: (h.preference, h.host))
    # RFC 7505: a single MX of "0 ." means the domain accepts no mail at all.
    null_mx = len(hosts) == 1 and hosts[0].preference == 0 and hosts[0].host in ("", ".")
    if hosts:
        return MxReport(domain, tuple(hosts), null_mx, ())
    return MxReport(
        domain,
        (),
        False,
        (
            finding(
                "mx.missing",
                f"{domain} has no MX record ({lookup.describe_failure()}); mail to it, including DMARC "
                "reports and bounces to its addresses, falls back to its A record or fails.",
            ),
        ),
    )
