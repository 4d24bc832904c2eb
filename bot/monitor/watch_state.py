"""What a watch's check saw, and what changed since the state its channel was last told about.

Pure functions, no I/O: the monitor feeds them a DomainReport and the watch's stored history.

The alert rules (the README's "Alert semantics" says the same):
- A check with any `dns.temperror` is an outage, never a change: it is not compared, the stored
  state is left alone, and only the third such cycle in a row alerts ("cannot check").
- The first good check is the baseline: no alert.
- A state (the normalised records plus the finding ids) that differs from the one the channel
  knows alerts at once when it is new: not seen in the last FLAP_WINDOW.
- Flapping: a state seen within FLAP_WINDOW that comes back is held, not alerted, unless it then
  holds for SETTLE_CHECKS good checks in a row. So a record going back and forth between two
  values (nameservers out of sync, a provider's rollout) alerts once. The one exception is a
  return to passing DMARC: "recovered" is said at once, so fixing a mistake by restoring the old
  record is announced; a record flapping between passing and failing says "failing" once and
  "recovered" once, then stays quiet.
- A part fetched over HTTPS (the MTA-STS policy, the BIMI logo and certificate) whose host cannot
  be reached or does not answer in time is an outage of that part: the last good check's records
  and findings for it stand in (carry_over). An answer the host gives (404, redirect) is a change.
- A certificate's approaching expiry is not a change of state: bot.monitor.certificate_expiry says
  it 30 and 7 days ahead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.store.watches import INHERITED_NOTE, ObservedState, Snapshot, WatchHistory, dmarc_record_name
from handlers.dns.domain_name import display_name
from handlers.domain.check import DomainReport
from handlers.domain.findings import Severity
from handlers.domain.spf import SpfInclude, SpfSyntaxError, parse_spf_record

FLAP_WINDOW = timedelta(hours=24)
SETTLE_CHECKS = 3
CANNOT_CHECK_AFTER = 3  # failed cycles in a row before "cannot check" is said


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One check of one domain, reduced to what the monitor compares and says."""

    domain: str
    state: ObservedState
    summary: str
    outage: bool  # a lookup failed: the result is unknown and must not be compared
    outage_detail: str = ""
    # When the check probed the common DKIM selectors: the ones where it found a key, beyond
    # those named (None when it did not probe, or hit an outage and so proved nothing).
    found_selectors: tuple[str, ...] | None = None
    # The parts fetched over HTTPS whose host could not be reached this time ("mta_sts", "bimi"):
    # unknown, so the last good check's records and findings for them stand in (carry_over).
    unknown_parts: tuple[str, ...] = ()
    # (what, when it expires) for each certificate read: the MTA-STS policy host's, the BIMI VMC's.
    # Kept out of the state: a renewal is no news, only an approaching expiry is.
    certificate_expiries: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class RecordChange:
    """One record whose joined text differs; None is "no record"."""

    name: str
    before: str | None
    after: str | None


@dataclass(frozen=True, kw_only=True)
class Change:
    """What one alert says about one watch."""

    kind: str  # changed / failing / recovered / check_restored / cannot_check
    domain: str
    selectors: tuple[str, ...]
    summary: str
    records: list[RecordChange] = field(default_factory=list)
    # the domain's own SPF record whose include chain was left out of `records` (it cannot be
    # evaluated on one side), or None
    spf_chain_not_compared: str | None = None
    appeared: list[dict[str, str]] = field(default_factory=list)
    cleared: list[dict[str, str]] = field(default_factory=list)
    verdict_before: str | None = None
    verdict_after: str | None = None


def observe(report: DomainReport) -> Observation:
    """Reduce a report to its normalised records, finding keys and verdict."""
    findings = [
        {
            "key": f"{f.id}:{f.severity.value}",
            "id": f.id,
            "severity": f.severity.value,
            "title": f.title,
            "detail": f.detail,
        }
        for f in report.findings
    ]
    records = observed_records(report)
    temperrors = [f for f in report.findings if f.id == "dns.temperror"]
    state = _state(records, findings, report.verdict)
    found = None
    if report.dkim is not None and report.dkim.probed and not temperrors:
        found = tuple(k.selector for k in report.dkim.keys if k.selector not in report.dkim.named)
    unknown = []
    expiries: list[tuple[str, datetime]] = []
    if report.mta_sts is not None:
        if report.mta_sts.policy_unknown:
            unknown.append("mta_sts")
        if report.mta_sts.certificate_expires is not None:
            host = f"mta-sts.{display_name(report.domain)}"
            expiries.append(
                (
                    f"The TLS certificate of {host} (the MTA-STS policy host)",
                    report.mta_sts.certificate_expires,
                )
            )
    if report.bimi is not None:
        if report.bimi.fetch_unknown:
            unknown.append("bimi")
        if report.bimi.certificate is not None:
            expiries.append(
                (
                    f"The BIMI certificate (VMC) at {report.bimi.certificate_url}",
                    report.bimi.certificate.not_after,
                )
            )
    return Observation(
        domain=report.domain,
        state=state,
        summary=report.summary,
        outage=bool(temperrors),
        outage_detail=temperrors[0].detail if temperrors else "",
        found_selectors=found,
        unknown_parts=tuple(unknown),
        certificate_expiries=tuple(expiries),
    )


def _state(records: dict[str, str | None], findings: list[dict[str, str]], verdict: str) -> ObservedState:
    # Info findings say what is not there and needs no fix (no BIMI record, an unsigned zone): a
    # change in them alone is no news for a channel, and a new check that adds one (an upgrade)
    # must not alert every watched domain at once. They stay in the state, and an alert raised by
    # a real change still lists them among what appeared or cleared.
    # A certificate's approaching expiry is said by its own alerts, 30 and 7 days ahead
    # (bot.monitor.certificate_expiry), not as a change of state.
    keys = sorted(
        {
            f["key"]
            for f in findings
            if f["severity"] != Severity.INFO.value and f["id"] not in EXPIRY_FINDINGS
        }
    )
    fingerprint = hashlib.sha256(json.dumps([records, keys], sort_keys=True).encode()).hexdigest()
    return ObservedState(fingerprint, records, findings, verdict)


def carry_over(observation: Observation, previous: Snapshot | None) -> Observation:
    """The observation with each unknown fetched part (its host unreachable or too slow this time)
    taken from the last good check: a fetch that failed for want of an answer is an outage of that
    part, never a change of it, nor a finding that appears. With no earlier check it stands as seen."""
    if not observation.unknown_parts or previous is None:
        return observation
    state = observation.state
    records = dict(state.records)
    findings = list(state.findings)
    for part in observation.unknown_parts:
        prefixes, finding_ids = _FETCHED[part]
        # a name the last check lacks (it predates watching it) stays out until a fetch succeeds
        for name in [n for n in records if n.startswith(prefixes)]:
            del records[name]
        records.update({n: v for n, v in previous.records.items() if n.startswith(prefixes)})
        findings = [f for f in findings if f["id"] not in finding_ids]
        findings += [f for f in previous.findings if f["id"] in finding_ids]
    return replace(observation, state=_state(records, findings, state.verdict), unknown_parts=())


def observed_records(report: DomainReport) -> dict[str, str | None]:
    """The records a change alert covers, by a readable name: DMARC, SPF and every record in its
    include chain (a provider's change can push the domain past 10 lookups), DKIM keys, MX."""
    domain = report.domain
    records: dict[str, str | None] = {}
    if not report.exists:
        return {f"{domain} (the domain)": None}
    if report.dmarc is not None:
        dmarc = report.dmarc
        multiple = next((f.record for f in dmarc.findings if f.id == "dmarc.multiple"), None)
        value = dmarc.record.raw if dmarc.record else multiple
        if value is not None and dmarc.location and dmarc.location != domain:
            value = f"{value}{INHERITED_NOTE}_dmarc.{dmarc.location})"
        records[dmarc_record_name(domain)] = value
    if report.spf is not None:
        records[spf_record_name(domain)] = "\n".join(report.spf.records) if report.spf.records else None
        for include in _walk(report.spf.includes):
            records[f"SPF {include.mechanism}:{include.domain}"] = include.record
    if report.dkim is not None:
        for selector in report.dkim.named:
            records[f"DKIM {selector}._domainkey.{domain}"] = None  # named: absence is news
        for key in report.dkim.keys:
            records[f"DKIM {key.name}"] = key.record
    if report.mx is not None:
        records[f"MX {domain}"] = ", ".join(f"{h.preference} {h.host}" for h in report.mx.hosts) or None
    records.update(transport_records(report))
    return records


EXPIRY_FINDINGS = frozenset({"mta_sts.cert_expiring", "bimi.certificate_expiring"})
# Names of the transport records in a state: a snapshot with none of them predates their watching.
TRANSPORT_PREFIXES = ("MTA-STS ", "TLS-RPT ", "BIMI ")
_MTA_STS_POLICY = "MTA-STS policy "
# What each part fetched over HTTPS contributes to a state: its record names and finding ids. When
# its host cannot be reached, these are carried over from the last good check (carry_over).
_FETCHED: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "mta_sts": (
        (_MTA_STS_POLICY,),
        frozenset(
            {
                "mta_sts.policy_unreachable",
                "mta_sts.policy_invalid",
                "mta_sts.mx_not_covered",
                "mta_sts.testing",
                "mta_sts.max_age_short",
                "mta_sts.cert_expiring",
            }
        ),
    ),
    "bimi": (
        (),
        frozenset(
            {
                "bimi.logo_unreachable",
                "bimi.logo_invalid",
                "bimi.certificate_invalid",
                "bimi.certificate_expiring",
            }
        ),
    ),
}


def transport_records(report: DomainReport) -> dict[str, str | None]:
    """The MTA-STS, TLS-RPT and BIMI records, and the MTA-STS policy file's content (fetched only
    when the record is published: the monitor stays cheap for the domains without one)."""
    domain = report.domain
    records: dict[str, str | None] = {}
    if report.mta_sts is not None:
        records[f"MTA-STS _mta-sts.{domain}"] = report.mta_sts.record
        # None without a record: nothing is fetched then (the check fetches what a record announces)
        text = report.mta_sts.policy_text
        # RFC 8461 §3.2: lines end in CRLF or LF, and trailing spaces carry nothing
        normalised = "\n".join(line.rstrip() for line in text.splitlines()).strip() if text else None
        records[f"{_MTA_STS_POLICY}https://mta-sts.{domain}/.well-known/mta-sts.txt"] = normalised
    if report.tls_rpt is not None:
        records[f"TLS-RPT _smtp._tls.{domain}"] = report.tls_rpt.record
    if report.bimi is not None:
        records[f"BIMI default._bimi.{domain}"] = report.bimi.record
    return records


def _new_to_comparison(known: dict[str, str | None], state: dict[str, str | None]) -> set[str]:
    """Transport record names the channel's state lacks altogether (not even as "no record"): they
    were not watched when it was taken (an upgrade), so their first value is a baseline, not news.
    Every later state has them all, a missing record as None."""
    return {name for name in state if name.startswith(TRANSPORT_PREFIXES) and name not in known}


def spf_record_name(domain: str) -> str:
    """The name under which the domain's own SPF record is observed."""
    return f"SPF {domain}"


def _is_include_chain(name: str) -> bool:
    return name.startswith(("SPF include:", "SPF redirect:"))


def _spf_evaluable(records: dict[str, str | None], domain: str) -> bool:
    """Whether receivers get past the domain's own SPF record to its include chain: one v=spf1
    record that parses. A second record (RFC 7208 §4.5) or a term that does not parse (§4.6) is a
    permerror before any include is looked up, so the chain then says nothing about the provider."""
    own = records.get(spf_record_name(domain))
    if own is None or "\n" in own:
        return False
    try:
        parse_spf_record(own)
    except SpfSyntaxError:
        return False
    return True


def _walk(includes: Iterable[SpfInclude]) -> Iterable[SpfInclude]:
    for include in includes:
        yield include
        yield from _walk(include.children)


def decide(history: WatchHistory, observation: Observation) -> tuple[Change | None, bool]:
    """The change to announce for a good check (or None), and whether the channel then knows this
    state. See the module docstring for the rules."""
    state = observation.state
    watch = history.watch
    restored = watch.temperror_streak >= CANNOT_CHECK_AFTER
    known = history.alerted
    if known is None:
        return None, True  # the baseline
    if state.fingerprint == known.fingerprint:
        return (_restored(history, observation) if restored else None), False
    unwatched = _new_to_comparison(known.records, state.records)
    if unwatched and _same_but(unwatched, known, state):
        # The channel's state was taken before these records were watched: the first state that
        # has them is their baseline, said to nobody (an upgrade must not alert every watched
        # domain at once).
        return (_restored(history, observation) if restored else None), True
    recovered = known.verdict != "pass" and state.verdict == "pass"
    new = state.fingerprint not in history.recent_fingerprints
    latest = history.latest
    settled = (
        latest is not None and latest.fingerprint == state.fingerprint and latest.checks + 1 >= SETTLE_CHECKS
    )
    if not (new or recovered or settled):
        return (_restored(history, observation) if restored else None), False  # a flap: held
    if known.verdict == "pass" and state.verdict == "fail":
        kind = "failing"
    elif recovered:
        kind = "recovered"
    else:
        kind = "changed"
    appeared, cleared = _finding_diff(known, state)
    records = _record_diff(known.records, state.records)
    records = [r for r in records if r.name not in unwatched]
    chain_comparable = _spf_evaluable(known.records, watch.domain) and _spf_evaluable(
        state.records, watch.domain
    )
    chain_skipped = not chain_comparable and any(_is_include_chain(r.name) for r in records)
    if chain_skipped:
        records = [r for r in records if not _is_include_chain(r.name)]
    return Change(
        kind=kind,
        domain=watch.domain,
        selectors=watch.selectors,
        summary=observation.summary,
        records=records,
        spf_chain_not_compared=spf_record_name(watch.domain) if chain_skipped else None,
        appeared=appeared,
        cleared=cleared,
        verdict_before=known.verdict,
        verdict_after=state.verdict,
    ), True


def _same_but(names: set[str], known: Snapshot, state: ObservedState) -> bool:
    """Whether only the records `names` tell the two states apart."""
    records = {n: v for n, v in state.records.items() if n not in names}
    return records == known.records and {f["key"] for f in state.findings} == {
        f["key"] for f in known.findings
    }


def cannot_check_change(domain: str, selectors: tuple[str, ...], streak: int, detail: str) -> Change:
    """The alert for the third failed cycle in a row."""
    return Change(
        kind="cannot_check",
        domain=domain,
        selectors=selectors,
        summary=f"The last {streak} checks of {domain} hit DNS failures, so nothing is known "
        f"about its records: {detail}",
        verdict_after="unknown",
    )


def _restored(history: WatchHistory, observation: Observation) -> Change:
    watch = history.watch
    return Change(
        kind="check_restored",
        domain=watch.domain,
        selectors=watch.selectors,
        summary=observation.summary,
        verdict_after=observation.state.verdict,
    )


def _record_diff(before: dict[str, str | None], after: dict[str, str | None]) -> list[RecordChange]:
    names = list(dict.fromkeys([*before, *after]))
    return [
        RecordChange(name, before.get(name), after.get(name))
        for name in names
        if before.get(name) != after.get(name)
    ]


def _finding_diff(known: Snapshot, state: ObservedState) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    before = {f["key"] for f in known.findings}
    after = {f["key"] for f in state.findings}
    appeared = _unique(f for f in state.findings if f["key"] not in before)
    cleared = _unique(f for f in known.findings if f["key"] not in after)
    rank = {s.value: s.rank for s in Severity}
    return (
        sorted(appeared, key=lambda f: rank.get(f["severity"], 9)),
        sorted(cleared, key=lambda f: rank.get(f["severity"], 9)),
    )


def _unique(findings: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for f in findings:
        seen.setdefault(f["key"], f)
    return list(seen.values())
