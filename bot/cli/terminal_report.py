"""Render a DomainReport for a person at a terminal: grouped by record, severity marked, colour
only when the output is a terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from bot.cli.terminal_text import terminal_safe
from handlers.domain.check import DomainReport
from handlers.domain.findings import Finding, Severity

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
    lines = [paint(_VERDICT_COLOURS[report.verdict], f"[{report.verdict.upper()}] ") + summary, ""]
    sections = _sections(report)
    shown: set[Finding] = set()
    for title, family, body in sections:
        lines.append(paint("1", title))
        lines.extend(f"  {terminal_safe(line, one_line=True)}" for line in body)
        for f in report.findings:
            if _family(f) in family and f not in shown:
                shown.add(f)
                lines.extend(_finding_lines(f, paint))
        lines.append("")
    rest = [f for f in report.findings if f not in shown]
    if rest:
        lines.append(paint("1", "Other"))
        for f in rest:
            lines.extend(_finding_lines(f, paint))
        lines.append("")
    lines.append(f"Checked {report.checked_at:%Y-%m-%d %H:%M:%S} UTC with {report.queries} DNS queries.")
    return "\n".join(lines)


def _family(f: Finding) -> str:
    return f.id.split(".", 1)[0]


def _sections(report: DomainReport) -> list[tuple[str, tuple[str, ...], list[str]]]:
    sections: list[tuple[str, tuple[str, ...], list[str]]] = []
    if not report.exists:
        return [("Domain", ("domain",), [f"{report.domain}: NXDOMAIN"])]
    if report.dmarc is not None:
        dmarc = report.dmarc
        body = [f"record:   {dmarc.record.raw}" if dmarc.record else "record:   (none)"]
        if dmarc.location:
            body.append(f"location: _dmarc.{dmarc.location}")
        if dmarc.policy:
            body.append(f"policy:   {dmarc.policy} for mail from {report.domain}")
        sections.append(("DMARC", ("dmarc", "dns", "domain"), body))
    if report.spf is not None:
        spf = report.spf
        body = [f"record:   {spf.record}" if spf.record else "record:   (none)"]
        if spf.record:
            body.append(f"lookups:  {spf.dns_lookups} of 10 allowed, {spf.void_lookups} void")
            body.extend(f"include:  {line}" for line in _include_lines(spf.to_json()))
        sections.append(("SPF", ("spf",), body))
    if report.dkim is not None:
        dkim = report.dkim
        body = [
            f"{k.selector}: {k.key_type or '?'} {k.key_bits or '?'} bits"
            f"{' (revoked)' if k.revoked else ''}  {_clip(k.record)}"
            for k in dkim.keys
        ]
        if not dkim.keys:
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
    return sections


def _include_lines(spf_json: dict[str, object], depth: int = 0) -> list[str]:
    lines = []
    includes = spf_json.get("includes")
    for item in includes if isinstance(includes, list) else []:
        if not isinstance(item, dict):
            continue
        via = item.get("via", "include")
        lines.append(f"{'  ' * depth}{via}:{item.get('domain')} → {_clip(str(item.get('record')))}")
        lines.extend(_include_lines(item, depth + 1))
    return lines


def _finding_lines(f: Finding, paint: Callable[[str, str], str]) -> list[str]:
    head = f"  {paint(_COLOURS[f.severity], _MARKS[f.severity])} {f.id}: {f.title}"
    lines = [head]
    detail, fix = terminal_safe(f.detail, one_line=True), terminal_safe(f.fix, one_line=True)
    lines += textwrap.wrap(detail, 100, initial_indent="         ", subsequent_indent="         ")
    if f.record:
        lines.append(f"         record: {terminal_safe(_clip(f.record, 200), one_line=True)}")
    lines += textwrap.wrap("fix: " + fix, 100, initial_indent="         ", subsequent_indent="              ")
    return lines


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
