"""Aggregate reports with side effects: ingestion, summaries, alerts, the chart, the IMAP mailbox."""

MAX_DAYS = 366  # the longest summary, in days (`report --days`, `/dmarc report DOMAIN DAYS`)
