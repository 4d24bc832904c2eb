"""Two opinions on every record the fix-it flow proposes: our parser's and checkdmarc's.

A record is offered only when both accept it. checkdmarc resolves as it parses (an
external rua's authorization record, SPF includes), so it is given our configured nameservers, and
its process-wide 30-minute cache is cleared around the call: a proposal must never
be judged on answers older than the request. Its warnings (an unverified rua, a p=none) do not stop
a record; only its errors do.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import dns.exception

from handlers.dns.resolver import Nameserver, checkdmarc_nameservers
from handlers.domain.dmarc_record import is_dmarc_record, parse_dmarc_record
from handlers.domain.spf import SpfSyntaxError, parse_spf_record

# checkdmarc's cache is one dict for the whole process: clear-then-parse must not interleave with
# another thread's clear-then-parse, or one of them could read the other's answers.
_CHECKDMARC_LOCK = threading.Lock()


def dmarc_record_problems(
    record: str, domain: str, nameservers: Sequence[Nameserver] = (), timeout: float = 2.0
) -> tuple[str, ...]:
    """Why `record` is not a valid DMARC record for `domain` by either parser (empty: valid)."""
    if not is_dmarc_record(record):
        return ("the record must start with v=DMARC1",)
    import checkdmarc.dmarc  # here: a second of imports that only a proposed record needs
    import checkdmarc.utils

    ours = parse_dmarc_record(record)
    problems = [*ours.problems]
    problems += [f"{tag}= was removed by RFC 9989" for tag in ours.deprecated]
    with _CHECKDMARC_LOCK:
        checkdmarc.utils.DNS_CACHE.clear()
        try:
            checkdmarc.dmarc.parse_dmarc_record(
                record,
                domain,
                nameservers=_servers(nameservers),
                timeout=timeout,
                retries=0,
                ignore_unrelated_records=True,
            )
        except (checkdmarc.dmarc.DMARCError, dns.exception.DNSException) as error:
            problems.append(f"checkdmarc: {error}")
        finally:
            checkdmarc.utils.DNS_CACHE.clear()
    return tuple(dict.fromkeys(problems))


def spf_record_problems(
    record: str, domain: str, nameservers: Sequence[Nameserver] = (), timeout: float = 2.0
) -> tuple[str, ...]:
    """Why `record` is not a valid SPF record for `domain` by either parser (empty: valid).
    checkdmarc also expands includes, so an include without a record or a count over 10 shows."""
    import checkdmarc.spf  # here: a second of imports that only a proposed record needs
    import checkdmarc.utils

    problems: list[str] = []
    try:
        parse_spf_record(record)
    except SpfSyntaxError as error:
        problems.append(str(error))
    with _CHECKDMARC_LOCK:
        checkdmarc.utils.DNS_CACHE.clear()
        try:
            checkdmarc.spf.parse_spf_record(
                record, domain, nameservers=_servers(nameservers), timeout=timeout, retries=0
            )
        except (checkdmarc.spf.SPFError, dns.exception.DNSException) as error:
            problems.append(f"checkdmarc: {error}")
        finally:
            checkdmarc.utils.DNS_CACHE.clear()
    return tuple(problems)


def _servers(nameservers: Sequence[Nameserver]) -> list[object] | None:
    return list(checkdmarc_nameservers(nameservers)) or None


__all__ = ["dmarc_record_problems", "spf_record_problems"]
