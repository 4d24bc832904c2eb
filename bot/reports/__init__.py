"""Aggregate reports with side effects: ingestion, summaries, alerts, the chart, the IMAP mailbox."""
