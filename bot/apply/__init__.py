"""Applying a fix plan through the zone's DNS provider: the providers file, the writers, the audit."""
