"""Is the domain ready for the next DMARC policy step? Aggregate reports say, else a checklist.

Without reports, the checklist names the senders the domain's SPF and DKIM records name.

RFC 9989 moves a domain none → quarantine → reject (optionally through t=y). The step is safe when
nearly all of the domain's real mail already passes DMARC aligned: what aggregate reports
(RFC 9990) measure. `AggregateStats` is the small input the aggregate-reports feature fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from handlers.fixes.providers import provider_for_include, providers_for_selector

WINDOW_DAYS = 14
READY_SHARE = 0.98  # aligned pass share at which the next step is considered safe
MIN_MESSAGES = 100  # fewer reported messages than this say too little either way


@dataclass(frozen=True)
class FailingSource:
    """A sending source whose mail failed DMARC in the window: an IP or a reporter-given name."""

    source: str
    messages: int


@dataclass(frozen=True)
class AggregateStats:
    """What aggregate reports say about the last `window_days`: messages reported, the share that
    passed DMARC aligned (0..1), and the sources that failed, largest first."""

    messages: int
    aligned_pass_share: float
    failing_sources: tuple[FailingSource, ...] = ()
    window_days: int = WINDOW_DAYS


@dataclass(frozen=True)
class Readiness:
    """The verdict (`ready`, `not_ready`, `unknown`), one sentence why, and what to check."""

    verdict: str
    summary: str
    checklist: tuple[str, ...] = ()


def assess_readiness(
    next_policy: str,
    stats: AggregateStats | None,
    spf_includes: Sequence[str] = (),
    dkim_selectors: Sequence[str] = (),
) -> Readiness:
    """Readiness for `next_policy`, from `stats` when there are enough reported messages, else a
    checklist of known senders to confirm by hand."""
    if stats is not None and stats.messages >= MIN_MESSAGES:
        share = f"{stats.aligned_pass_share:.1%}"
        failing = [f"{s.source} ({s.messages} messages failing)" for s in stats.failing_sources[:10]]
        if stats.aligned_pass_share >= READY_SHARE:
            return Readiness(
                "ready",
                f"{share} of {stats.messages} messages in the last "
                f"{stats.window_days} days passed DMARC aligned: ready for "
                f"{next_policy}.",
                tuple(failing),
            )
        return Readiness(
            "not_ready",
            f"Only {share} of {stats.messages} messages in the last "
            f"{stats.window_days} days passed DMARC aligned (at least "
            f"{READY_SHARE:.0%} is safe): fix the failing sources before "
            f"{next_policy}.",
            tuple(failing),
        )
    checklist = list(sender_checklist(spf_includes, dkim_selectors))
    checklist.append(
        "Any other service that sends as the domain (a CRM, invoicing, a helpdesk, "
        "a website's contact form) passes SPF or DKIM aligned."
    )
    why = "Too few aggregate reports to judge" if stats is not None else "No aggregate report data yet"
    return Readiness(
        "unknown",
        f"{why}: before {next_policy}, confirm each sender below "
        "signs with DKIM for the domain or sends from an address in its SPF.",
        tuple(checklist),
    )


def sender_checklist(spf_includes: Sequence[str], dkim_selectors: Sequence[str]) -> tuple[str, ...]:
    """One line per sender the records name: by provider where the catalog knows it."""
    lines: list[str] = []
    for include in spf_includes:
        provider = provider_for_include(include)
        label = provider.name if provider else f"include:{include}"
        lines.append(
            f"{label} (SPF include:{include}): its mail is DKIM-signed for the domain "
            "or uses a bounce address in the domain."
        )
    for selector in dkim_selectors:
        names = ", ".join(p.name for p in providers_for_selector(selector))
        lines.append(
            f"DKIM selector {selector}"
            + (f" ({names})" if names else "")
            + ": the key is published and signing works."
        )
    return tuple(dict.fromkeys(lines))


__all__ = ["AggregateStats", "FailingSource", "Readiness", "assess_readiness", "sender_checklist"]
