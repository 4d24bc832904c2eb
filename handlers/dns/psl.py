"""The Public Suffix List, for the few questions RFC 9989's tree walk does not answer cheaply.

Used to decide whether a report address belongs to another organization (RFC 9990 §3's external
destination check) without walking the DNS for every rua domain, and to group report sources by
provider. DMARC alignment itself uses the tree walk (handlers/domain/dmarc_discovery.py).
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _list() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: no download at run time


@lru_cache(maxsize=16_384)  # a summary asks it of the same few DKIM and reverse names again and again
def registrable_domain(name: str) -> str | None:
    """The registrable domain of `name` (`mail.example.co.uk` → `example.co.uk`), or None when the
    name is itself a public suffix."""
    result = _list().privatesuffix(name.lower().rstrip("."))
    return str(result) if result else None


def same_organization(a: str, b: str) -> bool:
    """True when both names fall under the same registrable domain."""
    org_a = registrable_domain(a) or a.lower()
    org_b = registrable_domain(b) or b.lower()
    return org_a == org_b
