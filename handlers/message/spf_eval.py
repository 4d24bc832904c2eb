"""The SPF result for one connecting IP, MAIL FROM and HELO: what a receiver computed for a message.

Evaluation is delegated to pyspf, the RFC 7208 reference implementation (it passes the OpenSPF
suite), with every DNS question it asks routed through our `DnsSession`: the same nameservers, the
same per-check freshness, the same outage classification as the rest of the diagnosis.

Why the module-level hook: pyspf takes no resolver argument. It calls the module-level function
`spf.DNSLookup(name, qtype, strict, timeout)`, which it binds at import to its pydns or dnspython
driver; replacing that function is pyspf's designed plug point (its own test suite does the same).
We install one dispatcher, once. It reads the session of the evaluation running in the current
thread from a ContextVar (`asyncio.to_thread` copies the context into the worker), so concurrent
evaluations with different sessions never mix, and code that calls pyspf without a session gets
pyspf's own driver, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import spf

from handlers.dns.resolver import CnameFailure, DnsSession, normalise_name

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")

# pyspf's DNSLookup return shape: [((name, qtype), value), ...]
_Answer = list[tuple[tuple[str, str], Any]]


@dataclass(frozen=True)
class _Route:
    session: DnsSession
    loop: asyncio.AbstractEventLoop


_current: contextvars.ContextVar[_Route | None] = contextvars.ContextVar("spf_eval_route", default=None)
_install_lock = threading.Lock()
_pyspf_lookup: Callable[..., _Answer] | None = None


@dataclass(frozen=True)
class SpfVerdict:
    """The SPF result for one message: result, pyspf's explanation, and the domain checked."""

    result: str  # one of RESULTS
    explanation: str
    domain: str  # the MAIL FROM domain, or the HELO name when MAIL FROM is empty (RFC 7208 §2.4)
    identity: str  # "mailfrom" or "helo"

    @property
    def passed(self) -> bool:
        """True for an SPF pass."""
        return self.result == "pass"

    def to_json(self) -> dict[str, str]:
        """The verdict as a JSON object."""
        return {
            "result": self.result,
            "explanation": self.explanation,
            "domain": self.domain,
            "identity": self.identity,
        }


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: Any = None) -> _Answer:
    """pyspf's DNSLookup: answer from the current evaluation's session, or pyspf's own driver."""
    route = _current.get()
    if route is None:
        assert _pyspf_lookup is not None
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException:
        return []  # not a possible DNS name (e.g. over 255 octets): nothing can exist there
    # The session's lookups run on the evaluation's event loop; this worker thread waits.
    future = asyncio.run_coroutine_threadsafe(route.session.lookup(name, qtype), route.loop)
    lookup = future.result()
    if lookup.cname_failure is CnameFailure.LOOP:
        # A CNAME loop is a broken zone, not a transient failure. pyspf, which follows CNAMEs
        # itself with its own drivers, treats a loop as "no data" (RFC 7208 test ptr-cname-loop:
        # a looping name met while validating PTR names is skipped, §5.5); so do we.
        return []
    if lookup.cname_failure is CnameFailure.TOO_LONG:
        raise spf.PermError(f"DNS {lookup.describe_failure()}")  # as pyspf's MAX_CNAME check
    if lookup.is_outage:
        # §2.6.6 / §4.4: a DNS error other than "no such name" is temperror.
        raise spf.TempError(f"DNS {lookup.describe_failure()}")
    key = (normalise_name(name), qtype)
    if qtype in ("TXT", "SPF"):
        # Our records are already joined strings; pyspf joins a record's chunks itself and wants
        # bytes (it checks for non-ASCII on them).
        return [(key, [text.encode("utf-8")]) for text in lookup.records]
    if qtype == "MX":
        answer: _Answer = []
        for text in lookup.records:
            preference, _, host = text.partition(" ")
            answer.append((key, (int(preference), host)))
        return answer
    # A, AAAA: address text; PTR: a name without the trailing dot (pyspf compares names).
    return [(key, text) for text in lookup.records]


def install_dns_hook() -> None:
    """Route pyspf's DNS through the current evaluation's DnsSession (idempotent)."""
    global _pyspf_lookup
    with _install_lock:
        if spf.DNSLookup is _dispatch:
            return
        _pyspf_lookup = spf.DNSLookup
        spf.DNSLookup = _dispatch


def _checked_identity(mail_from: str, helo: str) -> tuple[str, str]:
    # RFC 7208 §2.4: with an empty MAIL FROM the check uses postmaster@HELO.
    if mail_from and "@" in mail_from:
        return mail_from.rpartition("@")[2].lower(), "mailfrom"
    if mail_from:
        return mail_from.lower(), "mailfrom"
    return helo.lower(), "helo"


async def evaluate_spf(session: DnsSession, ip: str, mail_from: str, helo: str) -> SpfVerdict:
    """The RFC 7208 result for `ip` sending as `mail_from` (or `helo` when empty), via pyspf."""
    install_dns_hook()
    domain, identity = _checked_identity(mail_from, helo)
    route = _Route(session, asyncio.get_running_loop())

    def run() -> tuple[str, str]:
        token = _current.set(route)
        try:
            query = spf.query(i=ip, s=mail_from, h=helo)
            result, _code, explanation = query.check()
        except spf.PermError as error:  # raised by the constructor for an invalid IP
            return "permerror", str(error)
        finally:
            _current.reset(token)
        return str(result), str(explanation)

    result, explanation = await asyncio.to_thread(run)
    return SpfVerdict(result, explanation, domain, identity)


__all__ = ["RESULTS", "SpfVerdict", "evaluate_spf", "install_dns_hook"]
