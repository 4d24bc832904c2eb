"""Helpers for the message-diagnosis tests: keys, signed messages, and zones built from a name map."""
