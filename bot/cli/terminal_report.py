"""Render a DomainReport for a person at a terminal, grouped by record, severity marked.

Colour only when the output is a terminal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from bot.cli.terminal_text import terminal_safe
from handlers.dns.domain_name import display_name, first_mention, unicode_names
from handlers.domain.check import TRANSPORT_PARTS, DomainReport
from handlers.domain.findings import Finding, Severity
from handlers.domain.spf import SpfInclude

_COLOURS = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}
_MARKS = {Severity.ERROR: "ERROR", Severity.WARNING: "WARN ", Severity.INFO: "info "}
_VERDICT_COLOURS = {"pass": "32", "fail": "31", "unknown": "33"}


def render_domain_report(report: DomainReport, colour: bool = False) -> str:
    """The whole report as text: summary first, then one section per record with its findings."""

    def paint(code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if colour else text

    # Everything but our own words and colours came from DNS: each value is made safe on its own, so
    # a record cannot print an escape sequence nor start a line that looks like ours.
    summary = terminal_safe(report.summary, one_line=True)
    lines = [paint(_VERDICT_COLOURS[report.verdict], f"[{report.verdict.upper()}] ") + summary]
    if report.display_domain != report.domain:
        # the one place the A-label is shown: what DNS tools and zone files call the name
        lines.append(f"Domain: {first_mention(report.domain)}")
    lines.append("")
    sections = _sections(report)
    shown: set[Finding] = set()
    for title, family, body in sections:
        lines.append(paint("1", title))
        lines.extend(f"  {terminal_safe(line, one_line=True)}" for line in body)
        for f in report.findings:
            if report.part_of(f) in family and f not in shown:
                shown.add(f)
                lines.extend(_finding_lines(f, paint, report.display_domain))
        lines.append("")
    quiet = report.transport_sections()[1]
    if quiet:
        lines += [f"Also checked, nothing to report: {', '.join(quiet)}.", ""]
    rest = [f for f in report.findings if f not in shown]
    if rest:
        lines.append(paint("1", "Other"))
        for f in rest:
            lines.extend(_finding_lines(f, paint, report.display_domain))
        lines.append("")
    lines.append(f"Checked {report.checked_at:%Y-%m-%d %H:%M:%S} UTC with {report.queries} DNS queries.")
    return "\n".join(lines)


def _sections(report: DomainReport) -> list[tuple[str, tuple[str, ...], list[str]]]:
    sections: list[tuple[str, tuple[str, ...], list[str]]] = []
    if not report.exists:
        return [("Domain", ("domain",), [f"{report.domain}: NXDOMAIN"])]
    if report.dmarc is not None:
        dmarc = report.dmarc
        body = [f"record:   {dmarc.record.raw}" if dmarc.record else "record:   (none)"]
        if dmarc.location:
            body.append(f"location: _dmarc.{display_name(dmarc.location)}")
        if dmarc.policy:
            body.append(f"policy:   {dmarc.policy} for mail from {report.display_domain}")
        sections.append(("DMARC", ("dmarc", "domain"), body))
    org = report.organizational
    if org is not None and report.dmarc is not None and report.dmarc.record is not None:
        record = report.dmarc.record
        paths = report.aligned_paths()
        body = [
            f"organizational domain {org.domain}: adkim={record.adkim}, aspf={record.aspf} "
            f"({_alignment_words(record.adkim, record.aspf)})"
        ]
        body += [f"{'aligned:' if i == 0 else '':<10}{p.describe()}" for i, p in enumerate(paths)]
        if not paths:
            body.append("aligned:  nothing can give an aligned pass")
        keys = ", ".join(k.selector for k in org.dkim.keys) or "none found"
        body.append(f"keys at {org.domain}: {keys}")
        sections.append(("Alignment", ("alignment",), body))
    if report.spf is not None:
        spf = report.spf
        if len(spf.records) > 1:
            body = [f"records:  {len(spf.records)}, so receivers ignore them all"]
            body += [f"          {record}" for record in spf.records]
        else:
            body = [f"record:   {spf.record}" if spf.record else "record:   (none)"]
        if spf.record:
            body.append(f"lookups:  {spf.dns_lookups} of 10 allowed, {spf.void_lookups} void")
            included = _include_lines(spf.includes)
            body += [f"{'includes:' if i == 0 else '':<10}{line}" for i, line in enumerate(included)]
        sections.append(("SPF", ("spf",), body))
    if report.dkim is not None:
        dkim = report.dkim
        body = [
            f"{k.selector}: {k.key_type or '?'} {k.key_bits or '?'} bits"
            f"{' (revoked)' if k.revoked else ''}  {_clip(k.record)}"
            for k in dkim.keys
        ]
        if report.dkim_unknown:
            body.append("unknown: DNS failed" + _failed_selectors(dkim.unknown))
        elif not dkim.keys:
            body.append("no key found")
        how = "probed" if dkim.probed else "named"
        body.append(f"selectors {how}: {', '.join(dkim.selectors_tried)}")
        sections.append(("DKIM", ("dkim",), body))
    if report.mx is not None:
        mx = report.mx
        body = (
            ["null MX: the domain accepts no mail"]
            if mx.null_mx
            else [f"{h.preference:>3} {h.host}" for h in mx.hosts] or ["(none)"]
        )
        sections.append(("MX", ("mx",), body))
    names = dict(TRANSPORT_PARTS)
    sections += [
        (names[part], (part,), _transport_body(report, part)) for part in report.transport_sections()[0]
    ]
    return sections


def _transport_body(report: DomainReport, part: str) -> list[str]:
    """What a part after MX published, for its own section (its findings follow)."""
    if part == "mta_sts" and report.mta_sts is not None:
        body = [f"record:   {report.mta_sts.record or '(none)'}"]
        policy = report.mta_sts.policy
        if policy is not None:
            patterns = ", ".join(policy.mx[:5]) + (" …" if len(policy.mx) > 5 else "")
            body.append(f"policy:   mode {policy.mode}, max_age {policy.max_age}, mx {patterns or '(none)'}")
        return body
    if part == "tls_rpt" and report.tls_rpt is not None:
        return [f"record:   {report.tls_rpt.record or '(none)'}"]
    if part == "bimi" and report.bimi is not None:
        body = [f"record:   {report.bimi.record or '(none)'}"]
        if report.bimi.logo_url:
            body.append(f"logo:     {_clip(report.bimi.logo_url)}")
        if report.bimi.certificate is not None:
            mark = report.bimi.certificate
            body.append(f"VMC:      expires {mark.not_after:%Y-%m-%d}, issued by {_clip(mark.issuer)}")
        return body
    if part == "dnssec" and report.dnssec is not None:
        dnssec = report.dnssec
        state = {None: "unknown (DNS failed)", False: "not signed", True: "signed"}[dnssec.signed]
        if dnssec.valid is not None:
            state += ", signatures verify" if dnssec.valid else ", signatures do not verify"
        return [f"zone {display_name(dnssec.zone)}: {state}" if dnssec.zone else state]
    return []


def _alignment_words(adkim: str, aspf: str) -> str:
    """What the modes let align for a subdomain (RFC 9989 §4.4)."""
    relaxed = [f"a{t}" for t, mode in (("dkim", adkim), ("spf", aspf)) if mode != "s"]
    if not relaxed:
        return "strict: only identifiers at this exact name align"
    return f"relaxed {' and '.join(relaxed)}: identifiers at the organizational domain align"


def _include_lines(includes: tuple[SpfInclude, ...], depth: int = 0) -> list[str]:
    lines = []
    for item in includes:
        shown = item.record if item.record is not None else (item.failure or "no SPF record")
        lines.append(f"{'  ' * depth}{item.mechanism}:{item.domain} → {_clip(shown)}")
        lines.extend(_include_lines(item.children, depth + 1))
    return lines


def _failed_selectors(selectors: tuple[str, ...]) -> str:
    if not selectors:
        return ""
    more = f" …and {len(selectors) - 5} more" if len(selectors) > 5 else ""
    return f" ({len(selectors)} selector lookups failed: {', '.join(selectors[:5])}{more})"


def _fix_text(f: Finding, domain: str) -> str:
    """The finding's fix, with this surface's own syntax where the fix is to run a command."""
    if f.id == "dkim.no_selector":
        return f"{f.fix} Run: dmarcbot check {domain} --selector NAME"
    return f.fix


def _finding_lines(f: Finding, paint: Callable[[str, str], str], domain: str) -> list[str]:
    head = f"  {paint(_COLOURS[f.severity], _MARKS[f.severity])} {f.id}: {f.title}"
    lines = [head]
    detail = terminal_safe(unicode_names(f.detail), one_line=True)
    fix = terminal_safe(unicode_names(_fix_text(f, domain)), one_line=True)
    lines += textwrap.wrap(detail, 100, initial_indent="         ", subsequent_indent="         ")
    if f.record:
        lines.append(f"         record: {terminal_safe(_clip(f.record, 200), one_line=True)}")
    lines += textwrap.wrap("fix: " + fix, 100, initial_indent="         ", subsequent_indent="              ")
    return lines


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
