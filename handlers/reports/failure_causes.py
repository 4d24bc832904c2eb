"""A failure group's causes in a few words, and the Fix it finding that answers each cause.

A channel message about a group of failure reports names its causes in a line ("not in SPF, no
DKIM signature") and carries one Fix it button: the finding whose fix removes the most important
cause. Causes no DNS change at the domain removes (a body rewritten by a list, a forwarder, a
passing DNS failure) have no button.
"""

from __future__ import annotations

from collections.abc import Sequence

# Cause id -> a few words for a one-line summary (the cause ids are handlers.message.verdict's).
SHORT_CAUSES: dict[str, str] = {
    "cause.spf_ip_not_authorized": "not in SPF",
    "cause.spf_not_aligned": "SPF for another domain (not aligned)",
    "cause.spf_error": "SPF error",
    "cause.dkim_not_aligned": "DKIM signed by another domain (not aligned)",
    "cause.dkim_body_modified": "body changed after signing",
    "cause.dkim_header_modified": "signed headers changed",
    "cause.dkim_key_missing": "no DKIM key at the selector",
    "cause.dkim_key_invalid": "DKIM key revoked or invalid",
    "cause.no_dkim_signature": "no DKIM signature",
    "cause.forwarded": "forwarded",
    "cause.dns_temperror": "DNS lookup failed",
    "cause.no_dmarc_record": "no DMARC record",
}

# Cause id -> the finding whose Fix it removes it, most important first: without a DMARC record
# nothing else matters; a signature whose key is missing or broken says the sender already signs
# for the domain, so publishing that one key is the surest fix; then a sender missing from SPF;
# then DKIM set up for a sender that signs with its own domain or not at all (an aligned
# signature also cures SPF that passes for the sender's own bounce domain).
CAUSE_FIXES: tuple[tuple[str, str], ...] = (
    ("cause.no_dmarc_record", "dmarc.missing"),
    ("cause.dkim_key_missing", "dkim.key_missing"),
    ("cause.dkim_key_invalid", "dkim.key_invalid"),
    ("cause.spf_ip_not_authorized", "spf.sender_missing"),
    ("cause.no_dkim_signature", "dkim.key_missing"),
    ("cause.dkim_not_aligned", "dkim.key_missing"),
    ("cause.spf_not_aligned", "dkim.key_missing"),
)


def short_causes(cause_ids: Sequence[str]) -> str:
    """The causes in a few words each, in order ("not in SPF, no DKIM signature")."""
    if not cause_ids:
        return "no cause found"
    return ", ".join(SHORT_CAUSES.get(c, c) for c in cause_ids)


def fixing_cause(cause_ids: Sequence[str]) -> tuple[str, str] | None:
    """(the most important of `cause_ids` that a Fix it answers, that finding id), or None."""
    present = set(cause_ids)
    return next(((cause_id, finding) for cause_id, finding in CAUSE_FIXES if cause_id in present), None)


def fix_for_causes(cause_ids: Sequence[str]) -> str | None:
    """The finding id whose Fix it answers the most important of `cause_ids`, or None."""
    found = fixing_cause(cause_ids)
    return found[1] if found else None
