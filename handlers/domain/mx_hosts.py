"""The MX hosts themselves: each has an address, is not an alias, and has a reverse name that resolves back.

Every host's lookups go out at once (its addresses and its DANE TLSA records, handlers.domain.dane),
and every address's reverse lookup at once after them, so the part costs three round trips however
many hosts there are. An outage at any step is `dns.temperror`, never a missing address or a
missing reverse name.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession, Lookup
from handlers.domain.dane import TlsaSet, check_tlsa
from handlers.domain.findings import Finding, finding, temperror_finding
from handlers.domain.mx import MxReport
from handlers.limits import MAX_ADDRESSES_PER_MX, MAX_MX_HOSTS_CHECKED, MAX_REVERSE_NAMES


@dataclass(frozen=True)
class ReverseName:
    """An address's reverse (PTR) name, and whether that name resolves back to the address."""

    address: str
    name: str | None  # the name that resolves back, else the first PTR name, else None
    confirmed: bool


@dataclass(frozen=True)
class MxHostCheck:
    """What one MX host's own lookups said: its addresses, its alias chain, its reverse names."""

    host: str
    addresses: tuple[str, ...]
    cname_chain: tuple[str, ...]
    reverse: tuple[ReverseName, ...]
    tlsa: TlsaSet | None = None  # None: no TLSA records (or the lookup failed)

    def to_json(self) -> dict[str, object]:
        return {
            "addresses": list(self.addresses),
            "reverse": {r.address: r.name for r in self.reverse},
            "tlsa": [r.to_json() for r in self.tlsa.records] if self.tlsa else [],
        }


@dataclass(frozen=True)
class MxHostsReport:
    """The checked MX hosts, by name, and their findings."""

    hosts: tuple[MxHostCheck, ...]
    not_checked: tuple[str, ...]
    findings: tuple[Finding, ...]

    def host(self, name: str) -> MxHostCheck | None:
        return next((h for h in self.hosts if h.host == name), None)

    @property
    def dane(self) -> bool:
        """True when some MX host publishes a TLSA record senders can use."""
        return any(h.tlsa is not None and h.tlsa.usable for h in self.hosts)


async def check_mx_hosts(session: DnsSession, mx: MxReport) -> MxHostsReport:
    """Look up every MX host's addresses, then every address's reverse name, each step concurrent."""
    if mx.null_mx:
        return MxHostsReport((), (), ())
    names = list(dict.fromkeys(h.host for h in mx.hosts if h.host))
    checked, not_checked = names[:MAX_MX_HOSTS_CHECKED], names[MAX_MX_HOSTS_CHECKED:]
    results = await asyncio.gather(*(_check_host(session, host) for host in checked))
    findings = [f for _, host_findings in results for f in host_findings]
    return MxHostsReport(tuple(h for h, _ in results), tuple(not_checked), tuple(dict.fromkeys(findings)))


async def _check_host(session: DnsSession, host: str) -> tuple[MxHostCheck, list[Finding]]:
    shown = display_name(host)
    (a, aaaa), (tlsa, tlsa_findings) = await asyncio.gather(
        session.lookup_many([(host, "A"), (host, "AAAA")]), check_tlsa(session, host)
    )
    findings = [temperror_finding(lookup) for lookup in (a, aaaa) if lookup.is_outage]
    chain = a.cname_chain or aaaa.cname_chain
    if chain and not (a.is_cname_loop or aaaa.is_cname_loop):
        # RFC 2181 §10.3 and RFC 5321 §5.1: an MX must name a host, not an alias; some senders
        # refuse to follow the CNAME and others treat it as a configuration error.
        findings.append(
            finding(
                "mx.cname",
                f"The MX host {shown} is an alias (CNAME to {' → '.join(map(display_name, chain))}); "
                "RFC 2181 §10.3 requires an MX to name a host with its own address records.",
                fix=f"Point the MX record at {display_name(chain[-1])} directly, or give {shown} its own "
                "A/AAAA records.",
            )
        )
    addresses = (*a.records, *aaaa.records) if a.ok or aaaa.ok else ()
    if not addresses and not findings:
        findings.append(
            finding(
                "mx.no_address",
                f"The MX host {shown} has no address: the {a.describe_failure()} and the "
                f"{aaaa.describe_failure()}. Mail to the domain cannot be delivered to this host "
                "(RFC 5321 §5.1).",
                fix=f"Publish an A (or AAAA) record for {shown}, or remove it from the MX records.",
            )
        )
    reverse, reverse_findings = await _reverse_names(session, host, addresses[:MAX_ADDRESSES_PER_MX])
    checked = MxHostCheck(host, tuple(addresses), tuple(chain), reverse, tlsa)
    return checked, findings + tlsa_findings + reverse_findings


async def _reverse_names(
    session: DnsSession, host: str, addresses: tuple[str, ...]
) -> tuple[tuple[ReverseName, ...], list[Finding]]:
    """Each address's PTR names, then each name's addresses: forward-confirmed reverse DNS, which
    many receivers require of a sending host and some of any host they talk to (RFC 1912 §2.1)."""
    ptrs = await session.lookup_many([(ipaddress.ip_address(a).reverse_pointer, "PTR") for a in addresses])
    findings = [temperror_finding(p) for p in ptrs if p.is_outage]
    questions = {
        (name, _address_type(address))
        for address, ptr in zip(addresses, ptrs, strict=True)
        if ptr.ok
        for name in ptr.records[:MAX_REVERSE_NAMES]
    }
    forward = dict(zip(questions, await session.lookup_many(questions), strict=True))
    findings += [temperror_finding(f) for f in forward.values() if f.is_outage]
    reverse, problems = [], []
    for address, ptr in zip(addresses, ptrs, strict=True):
        if ptr.is_outage:
            reverse.append(ReverseName(address, None, False))
            continue
        names = ptr.records[:MAX_REVERSE_NAMES] if ptr.ok else ()
        lookups = [forward[(name, _address_type(address))] for name in names]
        back = next((n for n, f in zip(names, lookups, strict=True) if _holds(f, address)), None)
        reverse.append(ReverseName(address, back or (names[0] if names else None), back is not None))
        if back is not None or any(f.is_outage for f in lookups):
            continue
        if not names:
            problems.append(f"{address} has no reverse name ({ptr.describe_failure()})")
        else:
            problems.append(
                f"{address} has the reverse name {display_name(names[0])}, which does not resolve back to it"
            )
    if problems:
        shown = display_name(host)
        findings.append(
            finding(
                "mx.reverse_dns",
                f"The MX host {shown}: " + "; ".join(problems) + ". Some senders distrust a mail host "
                "whose reverse DNS does not match.",
                fix=f"Ask whoever runs the address (your host or provider) to set its reverse name "
                f"to {shown}, and keep {shown} resolving to it.",
            )
        )
    return tuple(reverse), findings


def _address_type(address: str) -> str:
    return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"


def _holds(lookup: Lookup, address: str) -> bool:
    wanted = ipaddress.ip_address(address)
    return lookup.ok and any(ipaddress.ip_address(r) == wanted for r in lookup.records)
