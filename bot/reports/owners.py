"""Who a report belongs to: the teams watching its domain, and the refusal when none does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

# Who owns a report about a domain: the team ids to store it for (empty: nobody).
Owners = Callable[[str], Sequence[str]]


def unowned(domains: Iterable[str]) -> str:
    """Why a report about `domains`, which no workspace watches, is not stored, and what to do."""
    names = ", ".join(sorted(set(domains))[:5])
    return (
        f"no workspace watches {names}: watch the domain (`/dmarc watch DOMAIN`) so its reports "
        "have a channel, then ingest the file again"
    )
