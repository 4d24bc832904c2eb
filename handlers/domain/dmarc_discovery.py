"""Find the DMARC record that applies to a name, and its Organizational Domain (RFC 9989 §4.10).

Both answers come from one DNS Tree Walk: `_dmarc.<name>`, then, when the name has more than 7
labels, `_dmarc.` of its last 7 labels, then one label fewer each step, down to the top-level
domain: 8 queries at most. The walk's names are known in advance, so all are asked at once: the
walk costs one round trip, not eight (identical questions are shared within a DnsSession).
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.dns.resolver import DnsSession, Lookup
from handlers.domain.dmarc_record import DmarcRecord, is_dmarc_record, parse_dmarc_record

MAX_WALK_LABELS = 7  # RFC 9989 §4.10: after the first query, jump to at most 7 labels


def tree_walk_names(domain: str) -> list[str]:
    """The names whose `_dmarc` record the walk reads, most specific first (RFC 9989 §4.10)."""
    labels = domain.split(".")
    names = [domain]
    for count in range(min(len(labels) - 1, MAX_WALK_LABELS), 0, -1):
        names.append(".".join(labels[-count:]))
    return names


@dataclass(frozen=True)
class WalkStep:
    """What `_dmarc.<name>` held: the DMARC records among its TXT strings, or an outage."""

    name: str
    lookup: Lookup
    dmarc_texts: tuple[str, ...]

    @property
    def record(self) -> DmarcRecord | None:
        """The record, when there is exactly one and it is usable; otherwise none applies here."""
        if len(self.dmarc_texts) != 1:
            return None
        record = parse_dmarc_record(self.dmarc_texts[0])
        return record if record.usable else None

    @property
    def any_record(self) -> DmarcRecord | None:
        """The single DMARC record here, usable as a policy or not: §4.10.2 reads psd= from any
        (a PSD record "v=DMARC1; psd=y" needs no p=)."""
        return parse_dmarc_record(self.dmarc_texts[0]) if len(self.dmarc_texts) == 1 else None


@dataclass(frozen=True)
class TreeWalk:
    """The answers of one walk, from the name itself up to its top-level domain."""

    domain: str
    steps: tuple[WalkStep, ...]

    def policy(self) -> PolicyDiscovery:
        """RFC 9989 §4.10: the first name up the walk that holds any DMARC record decides.
        Several records there: none applies (§4.10 step 2; `dmarc.multiple`). One record with no
        valid p= and no valid rua=: no DMARC processing (§4.10.1). An outage before that name
        leaves the answer unknown."""
        for step in self.steps:
            if step.lookup.is_outage:
                return PolicyDiscovery(
                    domain=self.domain,
                    record=None,
                    location=None,
                    outage=step.lookup,
                    reason="the DMARC lookup failed: " + step.lookup.describe_failure(),
                )
            if len(step.dmarc_texts) > 1:
                return PolicyDiscovery(
                    domain=self.domain,
                    record=None,
                    location=step.name,
                    outage=None,
                    ignored=step.dmarc_texts,
                    reason=f"_dmarc.{step.name} publishes {len(step.dmarc_texts)} DMARC records, "
                    "so none is applied",
                )
            if step.dmarc_texts:
                record = parse_dmarc_record(step.dmarc_texts[0])
                if not record.usable:
                    return PolicyDiscovery(
                        domain=self.domain,
                        record=None,
                        location=step.name,
                        outage=None,
                        ignored=step.dmarc_texts,
                        reason=f"the record at _dmarc.{step.name} has no valid p= "
                        "and no valid rua=, so receivers apply no DMARC to it",
                    )
                return PolicyDiscovery(domain=self.domain, record=record, location=step.name, outage=None)
        asked = ", ".join(f"_dmarc.{step.name}" for step in self.steps)
        return PolicyDiscovery(
            domain=self.domain, record=None, location=None, outage=None, reason=f"no DMARC record at {asked}"
        )

    def organizational_domain(self) -> OrgDomain:
        """RFC 9989 §4.10.2: psd=n marks the Organizational Domain; psd=y marks a public suffix
        domain, so the name one label below it is the Organizational Domain; otherwise it is the
        name with the fewest labels that has a record, or the name itself when none has one."""
        found: str | None = None
        for step in self.steps:
            if step.lookup.is_outage:
                return OrgDomain(self.domain, None, step.lookup)
            record = step.any_record
            if record is not None:
                if record.psd == "n":
                    return OrgDomain(self.domain, step.name, None)
                if record.psd == "y":
                    return OrgDomain(self.domain, _one_label_below(self.domain, step.name), None)
                found = step.name
        return OrgDomain(self.domain, found or self.domain, None)


def _one_label_below(domain: str, suffix: str) -> str:
    """The name under `suffix` on the way to `domain` (`domain` itself when it is the suffix)."""
    keep = suffix.count(".") + 2
    return ".".join(domain.split(".")[-keep:]) if domain != suffix else domain


@dataclass(frozen=True, kw_only=True)
class PolicyDiscovery:
    """The record that applies to `domain` and where it was found. With no record: `ignored` holds
    the DMARC texts at `location` that could not apply, and `reason` says why none applies."""

    domain: str
    record: DmarcRecord | None
    location: str | None
    outage: Lookup | None
    ignored: tuple[str, ...] = ()
    reason: str = ""

    @property
    def inherited(self) -> bool:
        return self.location is not None and self.location != self.domain


@dataclass(frozen=True)
class OrgDomain:
    """The Organizational Domain of `domain`, or the outage that left it unknown."""

    domain: str
    name: str | None
    outage: Lookup | None


async def tree_walk(session: DnsSession, domain: str) -> TreeWalk:
    """Ask every `_dmarc` name of the walk at once and keep the answers in walk order."""
    names = tree_walk_names(domain)
    lookups = await session.lookup_many((f"_dmarc.{name}", "TXT") for name in names)
    steps = tuple(
        WalkStep(name, lookup, tuple(t for t in lookup.records if is_dmarc_record(t)))
        for name, lookup in zip(names, lookups, strict=True)
    )
    return TreeWalk(domain, steps)


async def organizational_domain(session: DnsSession, domain: str) -> OrgDomain:
    """The Organizational Domain of any name (a DKIM d=, an envelope domain), by tree walk."""
    return (await tree_walk(session, domain)).organizational_domain()
