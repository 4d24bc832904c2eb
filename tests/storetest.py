"""Helpers for the store tests: an outbox alert and an observed state, each as small as allowed."""

from __future__ import annotations

from bot.store.outbox import NewAlert
from bot.store.watches import ObservedState


def new_alert(key: str, channel: str = "C1", domain: str = "example.com") -> NewAlert:
    return NewAlert(
        channel_id=channel,
        domain=domain,
        kind="changed",
        dedupe_key=key,
        text=f"text {key}",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": key}}],
        digest_block={"type": "section", "text": {"type": "mrkdwn", "text": key}},
    )


def observed(fingerprint: str, verdict: str = "pass") -> ObservedState:
    return ObservedState(fingerprint, {"SPF example.com": fingerprint}, [], verdict)
