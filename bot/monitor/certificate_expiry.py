"""Alerts 30 and 7 days before a watched domain's certificates expire: the MTA-STS host's, the BIMI VMC's.

An expiry is no change of any record, so it is kept out of the compared state (a renewal says
nothing); each threshold is said once per certificate, however many cycles see it and across
restarts: the outbox's dedupe key names the certificate's expiry date and the threshold, and a key
already written is never written again (bot.store.outbox).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from bot.monitor.watch_state import Change, Observation
from bot.store.watches import Watch

# Days before expiry at which the channel is told: a month leaves time to renew a VMC (its Mark
# Verifying Authority re-checks the mark), a week is the last call.
EXPIRY_WARNINGS_DAYS = (30, 7)
KIND = "certificate_expiring"


def expiry_changes(watch: Watch, observation: Observation, now: datetime) -> list[tuple[Change, str]]:
    """The alerts due for the certificates the check read, each with its dedupe key: the nearest
    threshold already reached, for a certificate not yet expired (an expired one is a finding)."""
    due = []
    for what, expires in observation.certificate_expiries:
        left = expires - now
        if left < timedelta(0):
            continue
        reached = [days for days in EXPIRY_WARNINGS_DAYS if left <= timedelta(days=days)]
        if not reached:
            continue
        threshold = min(reached)
        which = hashlib.sha256(what.encode()).hexdigest()[:12]
        key = f"{which}:{expires:%Y%m%dT%H%M%S}:{threshold}d"
        summary = (
            f"{what} expires on {expires:%Y-%m-%d %H:%M} UTC, in {left.days} day(s). Renew it before "
            "then: "
            + (
                "once it expires, senders cannot refresh the MTA-STS policy."
                if "MTA-STS" in what
                else "once it expires, mailbox providers stop showing the logo."
            )
        )
        change = Change(
            kind=KIND,
            domain=watch.domain,
            selectors=watch.selectors,
            summary=summary,
            verdict_after=observation.state.verdict,
        )
        due.append((change, key))
    return due
