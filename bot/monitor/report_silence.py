"""Reports stopped and resumed: a watched domain's aggregate reports that no longer arrive.

After each cycle, for every watch whose check just worked (so its latest snapshot is the DMARC
record as published now; a DNS outage decides nothing):
- reports arrived once, and none for the silence period: one alert, "no aggregate reports for
  DOMAIN since DATE", naming the causes it can see;
- reports arrive again after that alert: one "reports resumed";
- the DMARC record asks for reports (`rua=`) and none ever arrived, the silence period after the
  watch was added: one hint, with the same causes.

The causes: the `rua=` changed or disappeared since the reports last arrived (the snapshot of
that moment against the latest), an external destination lost its `_report._dmarc`
authorization (RFC 9990 §3: receivers send it nothing; the check's `dmarc.rua_unauthorized`),
the report mailbox's poll is failing (bot.store.mailbox_polls), or none of these.

Exactly once, across restarts and monitors: each alert's dedupe key names the silence it is
about (the watch and the time reports last arrived), so the outbox keeps one row however many
cycles or monitors see it; "resumed" is keyed by the silence it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.slack.blocks.aggregate import render_report_alert
from bot.store.mailbox_polls import MailboxPollStore
from bot.store.outbox import NewAlert
from bot.store.stores import Stores
from bot.store.watches import Snapshot, Watch
from handlers.domain.dmarc_record import is_dmarc_record, parse_dmarc_record

SILENT = "reports_silent"
RESUMED = "reports_resumed"
NEVER = "reports_never"


def review_report_silence(stores: Stores, watches: Sequence[Watch], silence: timedelta, now: datetime) -> int:
    """Write the silence, resumption and never-received alerts `watches` call for now (see the
    module docstring); returns how many were written."""
    polls = MailboxPollStore(stores.database)
    written = 0
    for watch in watches:
        alerts = silence_alerts(stores, polls, watch, silence, now)
        if alerts:
            written += stores.outbox.add_alerts(watch.team_id, alerts, now)
    return written


def silence_alerts(
    stores: Stores, polls: MailboxPollStore, watch: Watch, silence: timedelta, now: datetime
) -> list[NewAlert]:
    """The alerts one watch calls for now."""
    # This runs for every watch of every cycle: the cheap questions first, and the snapshot (a
    # JSON document) read only when an alert is to be written.
    last = stores.reports.last_ingested_at(watch.team_id, watch.domain)
    if last is None:
        if now - datetime.fromisoformat(watch.created_at) < silence:
            return []
        if stores.outbox.latest_alert(watch.team_id, NEVER, f"w{watch.id}:{NEVER}:"):
            return []  # the hint is given once
        latest = stores.watches.latest_snapshot(watch.team_id, watch.id)
        return _never(polls, watch, latest) if latest else []
    said = stores.outbox.latest_alert(watch.team_id, SILENT, f"w{watch.id}:{SILENT}:")
    since = said.dedupe_key.split(f":{SILENT}:", 1)[1] if said else None
    alerts: list[NewAlert] = []
    if since is not None and since < last:
        # reports came back after the silence that alert was about (written once: its key)
        detail = f"Reports arrived again on {last[:10]}, after none since {since[:10]}."
        alerts.append(_alert(watch, RESUMED, since, f"aggregate reports for {watch.domain} resumed", detail))
    arrived = datetime.fromisoformat(last)
    latest = None
    if now - arrived >= silence and since != last:
        latest = stores.watches.latest_snapshot(watch.team_id, watch.id)
    if latest is not None:
        before = stores.watches.snapshot_at(watch.team_id, watch.id, last)
        causes = likely_causes(watch.domain, before, latest, polls, arrived)
        detail = f"The last report arrived on {last[:10]}, {(now - arrived).days} days ago. " + _causes_text(
            causes
        )
        headline = f"no aggregate reports for {watch.domain} since {last[:10]}"
        alerts.append(_alert(watch, SILENT, last, headline, detail))
    return alerts


def _never(polls: MailboxPollStore, watch: Watch, latest: Snapshot) -> list[NewAlert]:
    """The hint for a watch older than the silence period whose reports never came."""
    rua = _rua(_dmarc_record(latest, watch.domain))
    if not rua:
        return []
    causes = likely_causes(watch.domain, None, latest, polls, None)
    detail = (
        f"The DMARC record asks for reports at {', '.join(rua)}, but none has arrived since the "
        f"domain was watched ({watch.created_at[:10]}). " + _causes_text(causes)
    )
    return [_alert(watch, NEVER, "", f"no aggregate reports for {watch.domain} yet", detail)]


def likely_causes(
    domain: str,
    before: Snapshot | None,
    latest: Snapshot,
    polls: MailboxPollStore,
    last_arrival: datetime | None,
) -> list[str]:
    """What the bot can see that would stop reports, each as a sentence; empty when none."""
    causes: list[str] = []
    now_record = _dmarc_record(latest, domain)
    if before is not None:
        then_rua = _rua(_dmarc_record(before, domain))
        now_rua = _rua(now_record)
        if then_rua and now_record is None:
            causes.append(f"The DMARC record is gone: it sent reports to {', '.join(then_rua)}.")
        elif then_rua and not now_rua:
            causes.append(f"The rua= tag disappeared from the DMARC record: it was {', '.join(then_rua)}.")
        elif then_rua and set(then_rua) != set(now_rua):
            causes.append(f"The rua= changed from {', '.join(then_rua)} to {', '.join(now_rua)}.")
    unauthorized = [f["detail"] for f in latest.findings if f.get("id") == "dmarc.rua_unauthorized"]
    authorized_before = before is None or not any(
        f.get("id") == "dmarc.rua_unauthorized" for f in before.findings
    )
    if unauthorized and authorized_before:
        # RFC 9990 §3: receivers send nothing to an external destination without it
        causes.append(
            "An external rua destination has no _report._dmarc authorization: " + " ".join(unauthorized[:2])
        )
    for failure in polls.failing(last_arrival):
        since = f" (last good poll {failure.last_ok_at[:16]} UTC)" if failure.last_ok_at else ""
        causes.append(
            f"The report mailbox poll is failing: {failure.mailbox} at {failure.last_error_at[:16]} UTC"
            f"{since}: {failure.last_error}"
        )
    return causes


def _causes_text(causes: list[str]) -> str:
    if not causes:
        return (
            "None of the causes dmarcbot can see: the rua= is unchanged, its destinations are "
            "authorized and the mailbox poll is not failing. Receivers may have stopped sending, or "
            "the reports go to a mailbox dmarcbot does not read."
        )
    return "Likely cause: " + " ".join(causes)


def _dmarc_record(snapshot: Snapshot, domain: str) -> str | None:
    raw = snapshot.dmarc_record(domain)
    return raw if raw and is_dmarc_record(raw) else None


def _rua(record: str | None) -> list[str]:
    if record is None:
        return []
    return [uri.uri for uri in parse_dmarc_record(record).rua]


def _alert(watch: Watch, kind: str, key: str, headline: str, detail: str) -> NewAlert:
    text, blocks, digest = render_report_alert(watch.domain, headline, detail)
    return NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind=kind,
        dedupe_key=f"w{watch.id}:{kind}:{key}"[:500],
        text=text,
        blocks=blocks,
        digest_block=digest,
    )
