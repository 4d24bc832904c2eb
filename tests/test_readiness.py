"""handlers/fixes/readiness.py: the verdict from aggregate statistics, else a checklist of known senders."""

from __future__ import annotations

from handlers.fixes.readiness import (
    MIN_MESSAGES,
    AggregateStats,
    FailingSource,
    assess_readiness,
    sender_checklist,
)


def test_ready_when_nearly_all_mail_passes_aligned() -> None:
    stats = AggregateStats(5000, 0.995, (FailingSource("198.51.100.7", 12),))
    readiness = assess_readiness("quarantine", stats)
    assert readiness.verdict == "ready"
    assert "99.5% of 5000 messages in the last 14 days" in readiness.summary
    assert readiness.checklist == ("198.51.100.7 (12 messages failing)",)


def test_not_ready_names_the_failing_sources() -> None:
    stats = AggregateStats(
        2000, 0.80, (FailingSource("mail.crm.example", 300), FailingSource("203.0.113.9", 100))
    )
    readiness = assess_readiness("reject", stats)
    assert readiness.verdict == "not_ready"
    assert "Only 80.0%" in readiness.summary and "before reject" in readiness.summary
    assert readiness.checklist[0] == "mail.crm.example (300 messages failing)"


def test_too_few_messages_falls_back_to_the_checklist() -> None:
    stats = AggregateStats(MIN_MESSAGES - 1, 1.0)
    readiness = assess_readiness("quarantine", stats, ["_spf.google.com"], ["google"])
    assert readiness.verdict == "unknown"
    assert readiness.summary.startswith("Too few aggregate reports")


def test_checklist_names_catalog_providers_from_spf_and_dkim() -> None:
    readiness = assess_readiness("quarantine", None, ["_spf.google.com", "mail.example.net"], ["selector1"])
    assert readiness.verdict == "unknown"
    assert readiness.summary.startswith("No aggregate report data yet")
    text = "\n".join(readiness.checklist)
    assert "Google Workspace (SPF include:_spf.google.com)" in text
    assert "include:mail.example.net (SPF include:mail.example.net)" in text
    assert "DKIM selector selector1 (Microsoft 365)" in text
    assert readiness.checklist[-1].startswith("Any other service")


def test_sender_checklist_without_senders_is_empty() -> None:
    assert sender_checklist([], []) == ()
