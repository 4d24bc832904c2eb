"""SPF fixes: add a sender, merge several records, replace +all/?all, flatten includes.

One generator covers every SPF finding: the published record(s) merged into one list of terms, then
the choices applied (terms removed, catalog senders and free-form terms added, chosen includes
replaced by the addresses they authorise, the final `all`). Lookups are counted and includes
flattened through a DnsSession, so nothing here is older than the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.dns.dns_entry import CLASSIC_UDP_LIMIT, DnsEntry, txt_answer_size
from handlers.dns.resolver import DnsSession, normalise_name
from handlers.domain.findings import Severity
from handlers.domain.spf import (
    MAX_DNS_LOOKUPS,
    SpfRecord,
    SpfReport,
    SpfSyntaxError,
    SpfTerm,
    check_spf,
    is_spf_record,
    parse_spf_record,
)
from handlers.fixes.providers import PROVIDERS_BY_KEY, provider_for_include
from handlers.fixes.records import FixInputError, Proposal

ALL_QUALIFIERS = ("-", "~")
MAX_EXTRA_TERMS = 10
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class SpfChoices:
    """What to change in the record: terms dropped and added, includes flattened, the final all."""

    add_providers: tuple[str, ...] = ()
    extra_terms: tuple[str, ...] = ()
    remove_terms: tuple[str, ...] = ()
    flatten: tuple[str, ...] = ()
    all_qualifier: str = "~"


@dataclass(frozen=True)
class MergedSpf:
    """The terms of every published v=spf1 record in one list (duplicates and `all` left out)."""

    terms: tuple[str, ...]
    all_qualifier: str | None  # the strictest usable all among the records, None when none
    redirect: str | None
    notes: tuple[str, ...]


def merge_spf_records(records: Sequence[str]) -> MergedSpf:
    """One term list from several records (§4.5: more than one is a permerror); a term that does
    not parse is dropped with a note, since it makes the whole record a permerror (§4.6)."""
    terms: list[str] = []
    notes: list[str] = []
    qualifiers: list[str] = []
    redirect: str | None = None
    for record in records:
        if not is_spf_record(record):
            continue
        for raw in record.split()[1:]:
            try:
                term = parse_spf_record(f"v=spf1 {raw}").terms[0]
            except (SpfSyntaxError, IndexError) as error:
                notes.append(f"Dropped {raw!r}: it does not parse ({error}).")
                continue
            if term.name == "all":
                qualifiers.append(term.qualifier)
            elif term.name == "redirect":
                redirect = redirect or raw
            elif term.name == "ptr":
                notes.append(
                    f"Dropped {raw!r}: ptr is deprecated (RFC 7208 §5.5); list the "
                    "addresses with ip4/ip6 instead."
                )
            elif raw.lower() not in (t.lower() for t in terms):
                terms.append(raw)
    if len([r for r in records if is_spf_record(r)]) > 1:
        notes.append("The records are merged into one; delete the others (RFC 7208 §4.5).")
    strict = next((q for q in ("-", "~") if q in qualifiers), None)
    return MergedSpf(tuple(terms), strict, redirect, tuple(notes))


_BARE_DOMAIN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\.?$")


def parse_extra_terms(text: str) -> tuple[str, ...]:
    """Free-form senders typed in the form (`include:x`, `ip4:…`, `ip6:…`, `a`, `mx`, a bare IP or
    network, a bare domain meaning include:) as SPF terms, or FixInputError naming the bad one."""
    items = [i for i in re.split(r"[\s,]+", text.strip()) if i]
    if len(items) > MAX_EXTRA_TERMS:
        raise FixInputError("terms", f"At most {MAX_EXTRA_TERMS} terms at a time.")
    out: list[str] = []
    for item in items:
        term = _as_term(item)
        try:
            parsed = parse_spf_record(f"v=spf1 {term}").terms[0]
        except (SpfSyntaxError, IndexError) as error:
            raise FixInputError(
                "terms",
                f"“{item[:60]}” is not an SPF term ({error}). Write "
                "include:_spf.example.com, ip4:192.0.2.0/24 or "
                "ip6:2001:db8::/32.",
            ) from None
        if parsed.name in ("all", "redirect", "exp", "ptr") or parsed.is_modifier:
            raise FixInputError(
                "terms",
                f"“{item[:60]}”: add senders only (include, ip4, ip6, "
                "a, mx); the all choice sets the ending.",
            )
        if parsed.qualifier != "+":
            raise FixInputError(
                "terms", f"“{item[:60]}”: a sender is added without a qualifier (+ is the default)."
            )
        out.append(term)
    return tuple(dict.fromkeys(out))


def _as_term(item: str) -> str:
    try:
        network = ipaddress.ip_network(item, strict=False)
    except ValueError:
        if ":" not in item and _BARE_DOMAIN.match(item) and not item.lower().startswith("v="):
            return f"include:{item.rstrip('.')}"
        return item
    prefix = "ip4" if network.version == 4 else "ip6"
    full = network.prefixlen == network.max_prefixlen
    return f"{prefix}:{network.network_address}" + ("" if full else f"/{network.prefixlen}")


def includes_of(terms: Sequence[str]) -> tuple[str, ...]:
    """The include targets among `terms`, in order."""
    out = []
    for raw in terms:
        term = _parse_term(raw)
        if term is not None and term.name == "include" and not term.has_macro:
            out.append(normalise_name(term.value))
    return tuple(dict.fromkeys(out))


def _parse_term(raw: str) -> SpfTerm | None:
    try:
        return parse_spf_record(f"v=spf1 {raw}").terms[0]
    except (SpfSyntaxError, IndexError):
        return None


@dataclass(frozen=True, kw_only=True)
class Flattened:
    """An include replaced by the networks its records authorise, or why it cannot be."""

    include: str
    networks: tuple[Network, ...]
    lookups_saved: int
    problem: str | None = None
    outage: bool = False  # the problem is a DNS failure: nothing is known about the addresses

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(_network_term(n) for n in self.networks)


def _network_term(network: Network) -> str:
    prefix = "ip4" if network.version == 4 else "ip6"
    if network.prefixlen == network.max_prefixlen:
        return f"{prefix}:{network.network_address}"
    return f"{prefix}:{network}"


async def flatten_include(session: DnsSession, include: str) -> Flattened:
    """The addresses `include:<include>` authorises, resolved now. Exact only when every term in
    its tree is a `+` ip4/ip6/a/mx/include: anything else (exists, ptr, macros, `-`/`~`/`?` terms
    before others, +all) changes meaning when flattened, so it is refused with the reason."""
    report = await check_spf(session, include)
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    if report.record is None or errors:
        why = errors[0].detail if errors else f"{include} has no SPF record"
        outage = any(f.id == "dns.temperror" for f in errors)
        return Flattened(
            include=include,
            networks=(),
            lookups_saved=0,
            problem=f"cannot flatten include:{include}: {why}",
            outage=outage,
        )
    networks: list[Network] = []
    for record in report.tree_records:
        problem, outage = await _collect_networks(session, record, include, networks)
        if problem:
            return Flattened(
                include=include,
                networks=(),
                lookups_saved=0,
                problem=f"cannot flatten include:{include}: {problem}",
                outage=outage,
            )
    collapsed = _collapse(networks)
    return Flattened(include=include, networks=collapsed, lookups_saved=1 + report.dns_lookups)


async def _collect_networks(
    session: DnsSession, record: SpfRecord, include: str, networks: list[Network]
) -> tuple[str | None, bool]:
    """Add the record's networks; returns (why it cannot be flattened, whether that is an outage)."""
    for term in record.reachable_mechanisms():
        if term.name == "all":
            if term.qualifier == "+":
                return "a record in its tree ends +all (everyone passes)", False
            continue  # §5.2: an included record's fail/softfail/neutral just means "no match"
        if term.qualifier != "+":
            return f"{term.raw!r} has a {term.qualifier} qualifier, which flattening would lose", False
        if term.has_macro or term.name in ("exists", "ptr"):
            return (f"{term.raw!r} depends on the message being checked (RFC 7208 §5.5, §5.7, §7)"), False
        if term.name in ("ip4", "ip6"):
            network = term.network()
            if network is not None:
                networks.append(network)
        elif term.name in ("a", "mx"):
            problem, outage = await _resolve_hosts(session, term, record, networks)
            if problem:
                return problem, outage
    return None, False


async def _resolve_hosts(
    session: DnsSession, term: SpfTerm, record: SpfRecord, networks: list[Network]
) -> tuple[str | None, bool]:
    domain = normalise_name(term.value) if term.value else None
    if domain is None:
        return f"{term.raw!r} names the including domain implicitly", False
    hosts = [domain]
    if term.name == "mx":
        answer = await session.lookup(domain, "MX")
        if answer.is_outage:
            return answer.describe_failure(), True
        hosts = [r.partition(" ")[2] for r in answer.records if r.partition(" ")[2] not in ("", ".")]
    for lookup in await session.lookup_many([(h, t) for h in hosts for t in ("A", "AAAA")]):
        if lookup.is_outage:
            return lookup.describe_failure(), True
        for address in lookup.records:
            ip = ipaddress.ip_address(address)
            length = term.cidr4 if ip.version == 4 else term.cidr6
            length = ip.max_prefixlen if length is None else length
            networks.append(ipaddress.ip_network(f"{ip}/{length}", strict=False))
    return None, False


def _collapse(networks: Sequence[Network]) -> tuple[Network, ...]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))


async def count_lookups(session: DnsSession, record: str) -> tuple[int, tuple[str, ...]]:
    """The §4.6.4 count of `record` once its includes and redirect are expanded (fresh lookups),
    and the problems that expansion meets (a target without a record, an outage)."""
    parsed = parse_spf_record(record)
    own = parsed.dns_terms()
    targets = [normalise_name(t.value) for t in own if t.name in ("include", "redirect") and not t.has_macro]
    reports = await asyncio.gather(*(check_spf(session, target) for target in targets))
    problems = []
    for target, report in zip(targets, reports, strict=True):
        for item in report.findings:
            if item.severity is Severity.ERROR and item.id != "spf.too_many_lookups":
                problems.append(f"include:{target}: {item.detail}")
    return len(own) + sum(r.dns_lookups for r in reports), tuple(problems)


def suggest_flatten(
    report: SpfReport, terms: Sequence[str], target: int = MAX_DNS_LOOKUPS
) -> tuple[str, ...]:
    """The fewest includes (costliest first) whose flattening brings the count to `target`."""
    costs = {node.domain: 1 + node.dns_lookups for node in report.includes if node.mechanism == "include"}
    total = report.dns_lookups
    chosen: list[str] = []
    for include in sorted(includes_of(terms), key=lambda d: -costs.get(d, 1)):
        if total <= target:
            break
        chosen.append(include)
        total -= costs.get(include, 1)
    return tuple(chosen)


@dataclass(frozen=True)
class AddressDrift:
    """How a flattened include's addresses changed since it was flattened into the record: the
    address terms to drop from the record and the ones to add (a re-flatten)."""

    include: str
    removed: tuple[str, ...]
    added: tuple[str, ...]


def address_drift(include: str, before: Sequence[str], after: Sequence[str]) -> AddressDrift:
    """The re-flatten that takes a record from the `before` addresses of `include` to `after`."""
    old, new = {t.lower() for t in before}, {t.lower() for t in after}
    return AddressDrift(
        include,
        tuple(t for t in before if t.lower() not in new),
        tuple(t for t in after if t.lower() not in old),
    )


def initial_spf_choices(
    finding_id: str,
    report: SpfReport | None,
    merged: MergedSpf,
    drift: AddressDrift | None = None,
    add_provider: str | None = None,
) -> SpfChoices:
    """The choices the modal opens with for an SPF finding (with `drift`, a stale flattening:
    the provider's old addresses dropped, its new ones added; with `add_provider`, a catalog
    sender seen in reports whose include is missing, already chosen)."""
    qualifier = merged.all_qualifier if merged.all_qualifier in ALL_QUALIFIERS else "~"
    if drift is not None:
        removed = {t.lower() for t in drift.removed}
        present = {t.lower() for t in merged.terms}
        return SpfChoices(
            remove_terms=tuple(t for t in merged.terms if t.lower() in removed),
            extra_terms=tuple(t for t in drift.added if t.lower() not in present),
            all_qualifier=qualifier,
        )
    flatten: tuple[str, ...] = ()
    if report is not None and finding_id in ("spf.too_many_lookups", "spf.near_limit"):
        goal = MAX_DNS_LOOKUPS if finding_id == "spf.too_many_lookups" else MAX_DNS_LOOKUPS - 2
        flatten = suggest_flatten(report, merged.terms, goal)
    remove: tuple[str, ...] = ()
    if report is not None and finding_id in ("spf.include_missing", "spf.void_lookups"):
        missing = {f.detail for f in report.findings if f.id == finding_id}
        remove = tuple(t for t in merged.terms if any(repr(t) in d for d in missing))
    add: tuple[str, ...] = ()
    provider = PROVIDERS_BY_KEY.get(add_provider or "")
    if provider is not None and provider.spf_include:
        present = {t.lower() for t in merged.terms}
        add = () if f"include:{provider.spf_include}".lower() in present else (provider.key,)
    return SpfChoices(add_providers=add, remove_terms=remove, flatten=flatten, all_qualifier=qualifier)


def build_spf_record(merged: MergedSpf, choices: SpfChoices, flattened: dict[str, Flattened]) -> str:
    """The one record: kept terms (a flattened include replaced in place by its addresses), the
    senders added, then the chosen all; a redirect is kept only when the record ends without all."""
    removed = {t.lower() for t in choices.remove_terms}
    terms: list[str] = []
    for raw in merged.terms:
        if raw.lower() in removed:
            continue
        target = includes_of([raw])
        if target and target[0] in flattened and flattened[target[0]].problem is None:
            terms += flattened[target[0]].terms
        else:
            terms.append(raw)
    for key in choices.add_providers:
        provider = PROVIDERS_BY_KEY.get(key)
        if provider is not None and provider.spf_include:
            terms.append(f"include:{provider.spf_include}")
    terms += choices.extra_terms
    unique = list(dict.fromkeys(terms))
    return " ".join(["v=spf1", *unique, f"{choices.all_qualifier}all"])


async def propose_spf(
    session: DnsSession,
    domain: str,
    records: Sequence[str],
    choices: SpfChoices,
    clears: Sequence[str],
    other_txt: Sequence[str] = (),
) -> Proposal:
    """The SPF record for `choices` at `domain`, with its lookup count, size and the caveats of
    flattening; `other_txt` are the domain's non-SPF TXT records, which share the DNS answer."""
    merged = merge_spf_records(records)
    notes = list(merged.notes)
    problems: list[str] = []
    for key in choices.add_providers:
        provider = PROVIDERS_BY_KEY.get(key)
        if provider is not None and provider.spf_note:
            notes.append(f"{provider.name}: {provider.spf_note}")
    flattened = dict(
        zip(
            choices.flatten,
            await asyncio.gather(*(flatten_include(session, include) for include in choices.flatten)),
            strict=True,
        )
    )
    for item in flattened.values():
        if item.problem:
            problems.append(item.problem)
    record = build_spf_record(merged, choices, flattened)
    lookups, lookup_problems = await count_lookups(session, record)
    problems += lookup_problems
    if lookups > MAX_DNS_LOOKUPS:
        problems.append(
            f"the record would need {lookups} DNS lookups, more than "
            f"{MAX_DNS_LOOKUPS} (RFC 7208 §4.6.4): choose includes to flatten"
        )
    else:
        notes.append(f"{lookups} of {MAX_DNS_LOOKUPS} DNS lookups.")
    watch = tuple(i for i, f in flattened.items() if f.problem is None)
    for include in watch:
        provider = provider_for_include(include)
        name = f"{provider.name}'s " if provider else ""
        notes.append(
            f"Flattened {name}include:{include} into {len(flattened[include].networks)} "
            f"address terms: when its addresses change, mail from them fails SPF. Watch "
            f"the domain (the watch then follows include:{include}) and re-flatten on a "
            "change."
        )
    size = txt_answer_size(domain, [*other_txt, record])
    if size > CLASSIC_UDP_LIMIT:
        notes.append(
            f"The TXT answer for {domain} would be {size} bytes, over {CLASSIC_UDP_LIMIT}: "
            "resolvers without EDNS must retry over TCP. It cannot be made smaller "
            "without dropping senders" + (" or flattening fewer includes." if watch else ".")
        )
    entry = DnsEntry(host=domain, rdtype="TXT", value=record, zone=domain)
    spf_before = tuple(r for r in records if is_spf_record(r))
    return Proposal(
        kind="spf",
        domain=domain,
        host=domain,
        rdtype="TXT",
        before=spf_before,
        entries=(entry,),
        clears=tuple(clears),
        notes=tuple(notes),
        problems=tuple(problems),
        delete=spf_before[1:],
        watch_includes=watch,
    )


__all__ = [
    "ALL_QUALIFIERS",
    "AddressDrift",
    "Flattened",
    "MergedSpf",
    "SpfChoices",
    "address_drift",
    "build_spf_record",
    "count_lookups",
    "flatten_include",
    "includes_of",
    "initial_spf_choices",
    "merge_spf_records",
    "parse_extra_terms",
    "propose_spf",
    "suggest_flatten",
]
