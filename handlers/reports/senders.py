"""Who sends as the domain: name each report source, and sort each sender into one category.

A source (one IP) is named by the first of these that applies, and the step is recorded:
1. `spf_include`: its IP is in an include (or redirect) of the domain's own SPF chain; the sender
   is that include's provider from the catalog (handlers.fixes.providers), else the include domain;
2. `dkim_domain`: a DKIM signature that passed carries the d= of a provider (the catalog's sending
   domains, else parsedmarc's map of base domains);
3. `reverse_dns`: the base domain of its reverse-DNS name is in the catalog or in parsedmarc's map
   (`sender_map/`, Apache-2.0);
4. none: the sender is unnamed (null).

Each source, and each sender (its sources together), is `compliant` (its mail passes DMARC),
`forwarded` (mail relayed by a forwarder or list: context, not a DNS fix), `misconfigured` (a named
sender whose mail fails alignment, with the identifier missing and a fix) or `unknown` (unnamed and
failing: possibly spoofing, which the policy should stop).
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from handlers.dns.psl import registrable_domain, same_organization
from handlers.domain.spf import SpfInclude, SpfReport, SpfSyntaxError, parse_spf_record
from handlers.fixes.providers import MailProvider, provider_for_include, provider_for_sending_domain

SENDER_MAP = Path(__file__).parent / "sender_map" / "base_reverse_dns_map.csv"

COMPLIANT_SHARE = 0.95  # a sender whose mail passes at least this often is compliant: the rest is
#                         the forwarding and list noise every domain's reports carry
FORWARDING_REASONS = frozenset({"forwarded", "mailing_list", "trusted_forwarder"})  # RFC 7489 §B.2
# Base domains of services whose business is forwarding mail: their failures are forwarding.
KNOWN_FORWARDERS = frozenset(
    {"forwardemail.net", "outboundrelay.com", "improvmx.com", "pobox.com", "simplelogin.co", "duck.com"}
)
MAX_SENDER_IPS = 100  # IPs listed per sender, largest first

CATEGORIES = ("misconfigured", "unknown", "forwarded", "compliant")  # the order people read them in

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- parsedmarc's map ---------------------------------------------------------------------------


class MappedService(NamedTuple):  # not a frozen dataclass: 38,000 of them are made per process
    """One row of the map: the service's name and kind ("Marketing", "Email Provider", ...)."""

    name: str
    kind: str


@cache
def sender_map() -> Mapping[str, MappedService]:
    """Base domain → service, read once from the vendored CSV."""
    # csv.reader, not DictReader: the map is read by every `dmarcbot report`, and DictReader's
    # per-row Python took most of a second for its 38,000 rows.
    with SENDER_MAP.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows, [])
        base, name, kind = (header.index(column) for column in ("base_reverse_dns", "name", "type"))
        width = max(base, name, kind)
        return {
            row[base].strip().lower(): MappedService(row[name].strip(), row[kind].strip())
            for row in rows
            if len(row) > width and row[base] and row[name]
        }


# -- the domain's own SPF chain -----------------------------------------------------------------


@dataclass(frozen=True)
class SpfAuthority:
    """Which networks the domain's own SPF chain authorises, by the include that brings them in.

    `known` is False when the chain could not be read (a DNS outage, no record, a permerror):
    then nobody can be said to be "not in SPF". Only ip4/ip6 terms count (a/mx would need more
    lookups per summary); a host authorised by a/mx is simply not found here.
    """

    known: bool
    own: tuple[Network, ...] = ()
    includes: tuple[tuple[str, tuple[Network, ...]], ...] = ()

    def include_for(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        """The include of the domain's own record whose chain authorises `ip`."""
        for include, networks in self.includes:
            if any(ip.version == n.version and ip in n for n in networks):
                return include
        return None

    def authorises(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether `ip` is in the chain's ip4/ip6 terms at all."""
        if any(ip.version == n.version and ip in n for n in self.own):
            return True
        return self.include_for(ip) is not None


def spf_authority(report: SpfReport | None) -> SpfAuthority:
    """The authority of a domain's checked SPF record (handlers.domain.spf.check_spf)."""
    if report is None or report.parsed is None or any(f.id == "dns.temperror" for f in report.findings):
        return SpfAuthority(known=False)
    own = tuple(n for term in report.parsed.reachable_mechanisms() if (n := term.network()) is not None)
    includes = tuple((node.domain, tuple(_networks(node))) for node in report.includes)
    return SpfAuthority(known=True, own=own, includes=includes)


def _networks(node: SpfInclude) -> Iterable[Network]:
    if node.record:
        try:
            parsed = parse_spf_record(node.record)
        except SpfSyntaxError:
            parsed = None
        if parsed is not None:
            for term in parsed.reachable_mechanisms():
                network = term.network()
                if network is not None:
                    yield network
    for child in node.children:
        yield from _networks(child)


# -- what a source's rows say -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RowFacts:
    """One stored row of a source: `messages` with the same outcome and identifiers."""

    ip: str
    messages: int
    dmarc_pass: bool
    spf_aligned: bool
    dkim_aligned: bool
    override_reasons: tuple[str, ...] = ()
    envelope_from: str | None = None
    dkim: tuple[tuple[str, str, str], ...] = ()  # (d=, s=, result)
    spf: tuple[tuple[str, str], ...] = ()  # (domain, result), MAIL FROM first


@dataclass(frozen=True, kw_only=True)
class SenderName:
    """A source's sender, the step that named it, and its catalog entry when it has one."""

    name: str | None
    source: str | None  # "spf_include", "dkim_domain", "reverse_dns" or None
    provider: MailProvider | None = None
    forwarder: bool = False


UNNAMED = SenderName(name=None, source=None)


def name_source(
    ip: str, rows: Sequence[RowFacts], authority: SpfAuthority, ptr_name: str | None
) -> SenderName:
    """Name one source by the first step that applies (see the module docstring)."""
    address = _address(ip)
    include = authority.include_for(address) if address is not None else None
    if include is not None:
        provider = provider_for_include(include)
        return SenderName(
            name=provider.name if provider else include, source="spf_include", provider=provider
        )
    passing = _passing_dkim_domains(rows)
    for d in passing:
        named = _by_base_domain(d, "dkim_domain")
        if named is not None:
            return named
    if ptr_name:
        named = _by_base_domain(ptr_name, "reverse_dns")
        if named is not None:
            return named
    return UNNAMED


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _passing_dkim_domains(rows: Sequence[RowFacts]) -> list[str]:
    volume: dict[str, int] = {}
    for row in rows:
        for d, _selector, result in row.dkim:
            if result == "pass" and d:
                volume[d] = volume.get(d, 0) + row.messages
    return sorted(volume, key=lambda d: (-volume[d], d))


@lru_cache(maxsize=16_384)  # one answer per name: a summary asks it for every source
def _by_base_domain(name: str, step: str) -> SenderName | None:
    base = registrable_domain(name.rstrip(".").lower())
    if base is None:
        return None
    provider = provider_for_sending_domain(base)
    if provider is not None:
        return SenderName(name=provider.name, source=step, provider=provider)
    mapped = sender_map().get(base)
    if mapped is not None:
        return SenderName(name=mapped.name, source=step, forwarder=base in KNOWN_FORWARDERS)
    return None


# -- categories ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    """The Fix it flow's entry for a misconfigured sender: the finding it opens, a title, and
    what the button needs (the provider to add, the DKIM selector to set up)."""

    finding: str
    title: str
    provider: str | None = None
    selector: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"finding": self.finding, "title": self.title}


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A category with its one-line reason, and the fix when there is one."""

    category: str
    reason: str
    fix: Fix | None = None


@dataclass(kw_only=True)
class _Tally:
    messages: int = 0
    passed: int = 0
    spf_aligned: int = 0
    dkim_aligned: int = 0
    forwarded: int = 0
    forwarded_why: dict[str, int] = field(default_factory=dict)
    failing_rows: list[RowFacts] = field(default_factory=list)


def judge(domain: str, sender: SenderName, rows: Sequence[RowFacts], authority: SpfAuthority) -> Verdict:
    """The category and reason for a sender's rows (one source's, or all of a sender's)."""
    tally = _Tally()
    for row in rows:
        tally.messages += row.messages
        if row.dmarc_pass:
            tally.passed += row.messages
            tally.spf_aligned += row.messages if row.spf_aligned else 0
            tally.dkim_aligned += row.messages if row.dkim_aligned else 0
            continue
        tally.failing_rows.append(row)
        why = _forwarding_sign(domain, sender, row, authority)
        if why is not None:
            tally.forwarded += row.messages
            tally.forwarded_why[why] = tally.forwarded_why.get(why, 0) + row.messages
    failing = tally.messages - tally.passed
    if tally.messages and tally.passed >= COMPLIANT_SHARE * tally.messages:
        return Verdict(category="compliant", reason=_compliant_reason(tally))
    if tally.forwarded * 2 >= failing:
        why = max(tally.forwarded_why, key=lambda w: tally.forwarded_why[w])
        return Verdict(category="forwarded", reason=f"{_share(failing, tally.messages)} fail DMARC: {why}")
    worst = max(tally.failing_rows, key=lambda r: r.messages)
    missing = _missing_identifiers(domain, worst, authority)
    if sender.name is None:
        return Verdict(
            category="unknown",
            reason=f"no sender name; {_share(failing, tally.messages)} fail DMARC ({missing}): possibly "
            "spoofing, which the policy should stop",
        )
    return Verdict(category="misconfigured", reason=missing, fix=_fix(domain, sender, worst, authority))


def _share(part: int, whole: int) -> str:
    if part == whole:
        return "all its messages"
    return f"{part:,} of {whole:,} messages"


def _compliant_reason(tally: _Tally) -> str:
    both = tally.spf_aligned and tally.dkim_aligned
    via = "aligned SPF and DKIM" if both else "aligned DKIM" if tally.dkim_aligned else "aligned SPF"
    if tally.passed == tally.messages:
        return f"passes DMARC through {via}"
    return f"{tally.passed:,} of {tally.messages:,} messages pass DMARC, through {via}"


def _forwarding_sign(domain: str, sender: SenderName, row: RowFacts, authority: SpfAuthority) -> str | None:
    """Why a failing row looks forwarded (RFC 7489 §B.2 override reasons, a known forwarder, or
    SPF failing from a host outside the domain's SPF while a DKIM signature of the domain is
    present: the signature survived the trip, the envelope did not), or None."""
    reasons = sorted(FORWARDING_REASONS.intersection(row.override_reasons))
    if reasons:
        return f"the receiver reported {', '.join(reasons)}"
    if sender.forwarder:
        return f"{sender.name} is a forwarding service"
    if sender.provider is not None or not authority.known:
        return None  # a catalog provider sends for the domain; without SPF, "outside it" is unknown
    address = _address(row.ip)
    outside = address is not None and not authority.authorises(address)
    signed = next((d for d, _s, _r in row.dkim if d and same_organization(d, domain)), None)
    if outside and not row.spf_aligned and signed is not None:
        return f"SPF fails from a host outside the domain's SPF while DKIM d={signed} is present"
    return None


def _missing_identifiers(domain: str, row: RowFacts, authority: SpfAuthority) -> str:
    """Which identifier is missing for a failing row, e.g. "not in SPF; DKIM d=mcsv.net not aligned"."""
    return f"{_spf_part(domain, row, authority)}; {_dkim_part(domain, row)}"


def _spf_part(domain: str, row: RowFacts, authority: SpfAuthority) -> str:
    spf_domain, spf_result = row.spf[0] if row.spf else (row.envelope_from or "", "")
    address = _address(row.ip)
    if authority.known and address is not None and not authority.authorises(address):
        return "not in SPF"
    if spf_result == "pass" and spf_domain and not same_organization(spf_domain, domain):
        return f"SPF passes for {spf_domain}, not aligned"
    return f"SPF {spf_result or 'none'}" + (f" for {spf_domain}" if spf_domain else "")


def _dkim_part(domain: str, row: RowFacts) -> str:
    if not row.dkim:
        return "no DKIM signature"
    for d, _selector, result in row.dkim:
        if result == "pass" and d and not same_organization(d, domain):
            return f"DKIM d={d} not aligned"
    d, selector, result = row.dkim[0]
    return f"DKIM d={d or '?'}" + (f" s={selector}" if selector else "") + f" {result or 'no result'}"


def _fix(domain: str, sender: SenderName, row: RowFacts, authority: SpfAuthority) -> Fix | None:
    """The Fix it entry: the provider's include when its mail uses the domain's own envelope and
    its host is not in SPF; else the provider's DKIM set-up (DKIM also survives forwarding)."""
    provider = sender.provider
    if provider is None:
        return None
    envelope = row.spf[0][0] if row.spf else row.envelope_from
    address = _address(row.ip)
    own_envelope = bool(envelope) and same_organization(envelope or "", domain)
    not_in_spf = authority.known and address is not None and not authority.authorises(address)
    if provider.spf_include and own_envelope and not_in_spf:
        return Fix(
            finding="spf.sender_missing",
            title=f"Add include:{provider.spf_include} ({provider.name}) to the SPF record of {domain}",
            provider=provider.key,
        )
    selector = (
        provider.dkim_cnames[0].selector
        if provider.dkim_cnames
        else provider.dkim_selectors[0]
        if provider.dkim_selectors
        else None
    )
    how = "DKIM CNAME records" if provider.dkim_uses_cname else "DKIM key"
    return Fix(
        finding="dkim.key_missing",
        title=f"Set up {provider.name}'s {how} for {domain}, so its mail is signed d={domain}",
        provider=provider.key,
        selector=selector,
    )
