"""Slack-free diagnostics: plain inputs in, typed results with findings out.

Nothing in this package imports slack_bolt or sqlite3, or reads the environment; the CLI and the
Slack app (both in ``bot/``) call into it.
"""
