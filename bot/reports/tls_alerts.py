"""Alerts from SMTP TLS reports, to the channel watching the domain, through the alert outbox.

After an ingest, for each watched domain that got TLS reports, for each day they cover:
- the day's success rate is more than `drop` (5 points) below the 14 days before, when both the day
  and that baseline carry at least `min_sessions` sessions (a handful of sessions alerts nobody);
- a failure type not seen in the 14 days before fails at least `new_type_min_sessions` sessions
  that day (a `certificate-expired` names the MX hosts whose certificate expired).
Each alert says what the domain's last check found of its MTA-STS policy and TLS-RPT record (the
watch's latest snapshot: the monitor's checks include them), since that decides whether senders
refused to deliver over the failing sessions or delivered without TLS.

Each alert has a dedupe key (the day, and the type), so ingesting more reports for the same day or
the same file again never alerts twice; the outbox delivers it exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from bot.reports.tls_summary import explain_result
from bot.slack.blocks.tls_reports import render_tls_alert
from bot.store.outbox import NewAlert
from bot.store.reports import shift
from bot.store.stores import Stores
from bot.store.tls_reports import StoredTlsReport, TlsReportStore, TlsTotals
from bot.store.watches import Snapshot, Watch

# What to do about each result type (RFC 8460 §4.3), said after the hosts it names.
FIXES = {
    "starttls-not-supported": "enable STARTTLS on the MX host",
    "certificate-expired": "renew the MX host's certificate",
    "certificate-host-mismatch": "use a certificate that names the MX host",
    "certificate-not-trusted": "use a certificate from a CA that senders trust, with its full chain",
    "validation-failure": "check the MX host's certificate chain and TLS configuration",
    "sts-policy-fetch-error": "serve the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt",
    "sts-policy-invalid": "fix the MTA-STS policy file (RFC 8461 §3.2)",
    "sts-webpki-invalid": "give mta-sts.DOMAIN a valid certificate from a public CA",
    "tlsa-invalid": "publish TLSA records that match the MX host's certificate",
    "dnssec-invalid": "repair the zone's DNSSEC signatures",
    "dane-required": "publish valid TLSA records for the MX host",
}


@dataclass(frozen=True, kw_only=True)
class TlsThresholds:
    """When TLS report data is worth an alert."""

    drop: Fraction = Fraction(5, 100)  # success rate below the baseline by more than 5 points
    min_sessions: int = 100  # on the day, and in the baseline
    baseline_days: int = 14
    new_type_min_sessions: int = 10


DEFAULT_TLS_THRESHOLDS = TlsThresholds()


def review_tls_after_ingest(
    stores: Stores,
    stored: Sequence[StoredTlsReport],
    thresholds: TlsThresholds = DEFAULT_TLS_THRESHOLDS,
) -> int:
    """Check every watched (team, domain) among the `stored` TLS reports; returns alerts written.
    Duplicates count too: a crash after storing but before alerting is repaired when the report
    comes again, and the dedupe keys stop repeats. The reports' own days are the clock: nothing
    here reads the time."""
    touched: dict[tuple[str, str], set[str]] = {}
    for report in stored:
        for domain in report.domains:
            touched.setdefault((report.team_id, domain), set()).add(report.day)
    written = 0
    for (team_id, domain), days in sorted(touched.items()):
        watch = stores.watches.watch(team_id, domain)
        if watch is None:
            continue  # alerts go to the watch's channel: an unwatched domain has none
        context = transport_context(stores.watches.latest_snapshot(team_id, watch.id), domain)
        alerts = [
            *tls_rate_alerts(stores.tls_reports, watch, days, context, thresholds),
            *new_failure_type_alerts(stores.tls_reports, watch, days, context, thresholds),
        ]
        if alerts:
            written += stores.outbox.add_alerts(team_id, alerts)
    return written


def tls_rate_alerts(
    store: TlsReportStore,
    watch: Watch,
    days: set[str],
    context: str,
    thresholds: TlsThresholds = DEFAULT_TLS_THRESHOLDS,
) -> list[NewAlert]:
    """A drop of a day's TLS success rate below the baseline of the days before."""
    alerts = []
    for day in sorted(days):
        today = store.totals(watch.team_id, watch.domain, day, day)
        base = store.totals(
            watch.team_id, watch.domain, shift(day, -thresholds.baseline_days), shift(day, -1)
        )
        if today.sessions < thresholds.min_sessions or base.sessions < thresholds.min_sessions:
            continue
        # Exact fractions: 99% against 94% is 5 points, not 5.000000000000004.
        if _rate(base) - _rate(today) <= thresholds.drop:
            continue
        worst = store.failures(watch.team_id, watch.domain, day, day, limit=3)
        causes = "; ".join(
            f"{f.result_type}{' at ' + f.receiving_mx if f.receiving_mx else ''} ({f.sessions:,})"
            for f in worst
        )
        detail = (
            f"On {day}, {float(_rate(today)):.1%} of {today.sessions:,} TLS sessions to the MX hosts "
            f"succeeded, against {float(_rate(base)):.1%} of {base.sessions:,} over the "
            f"{thresholds.baseline_days} days before"
            + (f". Most failures: {causes}" if causes else "")
            + f". {context}"
        )
        alerts.append(
            _alert(watch, "tls_success_rate_drop", f"rate:{day}", "TLS success rate dropped", detail)
        )
    return alerts


def new_failure_type_alerts(
    store: TlsReportStore,
    watch: Watch,
    days: set[str],
    context: str,
    thresholds: TlsThresholds = DEFAULT_TLS_THRESHOLDS,
) -> list[NewAlert]:
    """A failure type not seen in the days before, failing at least `new_type_min_sessions`."""
    alerts = []
    for day in sorted(days):
        today = store.result_types(watch.team_id, watch.domain, day, day)
        before = store.result_types(
            watch.team_id, watch.domain, shift(day, -thresholds.baseline_days), shift(day, -1)
        )
        for result_type, sessions in today.items():
            if sessions < thresholds.new_type_min_sessions or result_type in before:
                continue
            hosts = store.failing_hosts(watch.team_id, watch.domain, day, result_type)
            at = f" at {', '.join(hosts)}" if hosts else ""
            fix = FIXES.get(result_type, "").replace("DOMAIN", watch.domain)
            if result_type == "certificate-expired" and hosts:
                headline = f"the TLS certificate of {hosts[0]} expired"
            else:
                headline = f"new TLS failure: {result_type}"
            detail = (
                f"On {day}, {sessions:,} TLS sessions to {watch.domain} failed with {result_type}{at}: "
                f"{explain_result(result_type)}. Not seen in the {thresholds.baseline_days} days before."
                + (f" Fix: {fix}." if fix else "")
                + f" {context}"
            )
            alerts.append(
                _alert(watch, "tls_new_failure_type", f"type:{result_type}:{day}", headline, detail)
            )
    return alerts


def transport_context(snapshot: Snapshot | None, domain: str) -> str:
    """What the last check of the domain found of MTA-STS and TLS-RPT, in one or two sentences:
    with an MTA-STS policy in enforce mode, senders refuse to deliver over a failing session
    (RFC 8461 §5); without one, or in testing mode, they deliver without TLS."""
    if snapshot is None:
        return "The domain has not been checked yet, so whether it publishes an MTA-STS policy is not known."
    ids = {str(f.get("id")) for f in snapshot.findings}
    if "mta_sts.missing" in ids:
        sts = (
            f"{domain} publishes no MTA-STS policy (the last check found none), so senders deliver "
            "over a failing session without TLS rather than refuse it."
        )
    elif ids & {"mta_sts.record_invalid", "mta_sts.policy_unreachable", "mta_sts.policy_invalid"}:
        problems = ", ".join(sorted(i for i in ids if i.startswith("mta_sts.")))
        sts = (
            f"{domain}'s MTA-STS policy is published but the last check could not use it ({problems}): "
            "senders cannot apply it either."
        )
    elif "mta_sts.testing" in ids:
        sts = (
            f"{domain}'s MTA-STS policy is published in testing mode: senders report these failures "
            "but still deliver, without TLS."
        )
    else:
        sts = (
            f"{domain} publishes an MTA-STS policy in enforce mode: senders that honour it did not "
            "deliver over these sessions, so mail is delayed or bounced."
        )
    if "tls_rpt.missing" in ids:
        sts += " The last check found no TLS-RPT record (_smtp._tls): these reports may stop."
    return sts


def _rate(totals: TlsTotals) -> Fraction:
    return Fraction(totals.successful, totals.sessions)


def _alert(watch: Watch, kind: str, key: str, headline: str, detail: str) -> NewAlert:
    text, blocks, digest = render_tls_alert(watch.domain, headline, detail)
    return NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind=kind,
        dedupe_key=f"{kind}:{watch.domain}:{key}"[:500],
        text=text,
        blocks=blocks,
        digest_block=digest,
    )
