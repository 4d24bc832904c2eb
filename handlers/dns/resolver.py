"""The one place every DNS lookup goes through: ours, dkimpy's and pyspf's, and checkdmarc's nameservers.

A `DnsSession` is one unit of freshness: it remembers each answer for its own lifetime only (one
check, one re-check, one monitor cycle), so no answer read before a check began can serve that check
(checkdmarc's 30-minute process-wide cache is the trap this avoids). Within a session,
identical questions are asked once, even when asked concurrently (up to the `max_answers` most
recently used, for a session as long as a monitor cycle).

Failures stay distinct (the `dns.temperror` finding): NXDOMAIN and NODATA are answers; SERVFAIL,
REFUSED, a timeout and a truncated answer whose TCP retry failed are outages, and callers must never
report an outage as a missing record.

Queries in flight are bounded per session (`max_inflight`): a monitor cycle asks tens of thousands
of questions, and a burst past what the socket, the path or the resolver can hold is dropped, not
queued (dnsmasq, the resolver of many routers, forwards at most 150 at once by default and drops
the rest). Every query waits for a slot; a timeout suffered while our own queries were queueing is
taken as our congestion, not the domain's: the window of slots shrinks and the query is asked again
after a backoff, before the timeout counts as an outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import ipaddress
import random
import re
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from handlers.dns.wire import (
    MalformedAnswer,
    WireAnswer,
    WireQuery,
    build_query,
    encode_name,
    read_answer,
)
from handlers.errors import ConfigurationError

# RFC 1034 §3.6.2 allows long chains, but resolvers cap them; 8 matches common practice.
MAX_CNAME_HOPS = 8
# Answers larger than this come back truncated over UDP and are retried over TCP.
EDNS_PAYLOAD = 1232
# Queries in flight at once, per session: below dnsmasq's default forward limit (150), and enough
# to keep a 20 ms path busy at thousands of queries a second.
DEFAULT_MAX_INFLIGHT = 100
# A timeout under our own load is asked again this many times, after a backoff doubling from
# CONGESTION_BACKOFF seconds (randomised, so the retries of one burst do not arrive as a burst).
CONGESTION_RETRIES = 4
CONGESTION_BACKOFF = 0.05
MIN_WINDOW = 4  # the window never shrinks below this many queries in flight
# Answers a session remembers, the least recently used forgotten first: a check asks a few
# hundred, a monitor cycle over 10,000 domains hundreds of thousands, most asked by one domain
# only. A provider's include, asked by domain after domain, stays; the rest go, so the cycle's
# memory stays flat. A forgotten answer asked again is asked of DNS again: fresher, never older.
# 20,000 is over four times what 64 domains probing 59 selectors each ask between two uses.
DEFAULT_MAX_ANSWERS = 20_000
_Answer = TypeVar("_Answer")  # a Lookup or a SignedLookup, shared by concurrent askers
_Outcome = TypeVar("_Outcome")  # what one attempt returns: a response, or the failure as a lookup


class DnsStatus(enum.Enum):
    """How a lookup ended. The first three are answers; the rest are outages."""

    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"  # UDP answer truncated and the TCP retry failed
    ERROR = "error"  # any other failure: an unreachable server, a malformed answer


OUTAGES = frozenset(
    {DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT, DnsStatus.TRUNCATED, DnsStatus.ERROR}
)
# How the rcode of a signed question's answer ends it (the plain path also follows CNAMEs).
_SIGNED_STATUS: dict[int, DnsStatus] = {
    dns.rcode.SERVFAIL: DnsStatus.SERVFAIL,
    dns.rcode.REFUSED: DnsStatus.REFUSED,
    dns.rcode.NXDOMAIN: DnsStatus.NXDOMAIN,
    dns.rcode.NOERROR: DnsStatus.OK,
}


class CnameFailure(enum.Enum):
    """Why following CNAMEs stopped before an answer: a broken zone, reported with status ERROR."""

    LOOP = "loop"
    TOO_LONG = "too long"


@dataclass(frozen=True)
class Nameserver:
    """A DNS server to ask, as a user names it: `host[:port]`."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


class NameserverError(ConfigurationError):
    """A nameserver setting that is not `host[:port]` with an IP address."""


_HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


def parse_nameserver(text: str) -> Nameserver:
    """Parse `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353` or `localhost:5353` into a Nameserver.

    A host name is resolved once, here, through the system resolver (getaddrinfo): the setting is
    read at start-up, and every later query goes to the address it names."""
    text = text.strip()
    not_an_address = NameserverError(
        f"nameserver {text!r} is not an IP address or host name with an optional port, "
        "like 127.0.0.1:5353, [::1]:53 or localhost:5353"
    )
    host, port_text = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):  # `[::1`, `[::1]53`
            raise not_an_address
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if text.startswith("[") or not _HOST_NAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise not_an_address from None
        host = _address_of(host, text)
    if port_text is not None:  # present, so it must be a port: `1.2.3.4:` is a typo, not port 53
        # isascii(): str.isdigit() accepts digits of other scripts, which int() then reads.
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise NameserverError(f"nameserver {text!r} has an invalid port {port_text!r}")
        return Nameserver(host, int(port_text))
    return Nameserver(host)


def _address_of(host: str, setting: str) -> str:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as error:
        raise NameserverError(
            f"nameserver {setting!r}: the host name {host!r} does not resolve ({error})"
        ) from None
    # Prefer IPv4: a name like localhost resolves to both, and test servers listen on 127.0.0.1.
    addresses = sorted((str(info[4][0]) for info in infos), key=lambda address: ":" in address)
    return addresses[0]


def parse_nameservers(texts: Iterable[str]) -> tuple[Nameserver, ...]:
    """Parse several settings, each possibly a comma-separated list (as in DMARCBOT_NAMESERVERS)."""
    return tuple(parse_nameserver(part) for text in texts for part in text.split(",") if part.strip())


def system_nameservers() -> tuple[Nameserver, ...]:
    """The nameservers of /etc/resolv.conf, or an empty tuple when there is none."""
    try:
        configured = dns.resolver.Resolver(configure=True).nameservers
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple(Nameserver(str(ns)) for ns in configured if isinstance(ns, str))


def checkdmarc_nameservers(nameservers: Sequence[Nameserver]) -> list[dns.nameserver.Nameserver]:
    """The same servers in the form checkdmarc's `nameservers=` takes (it reaches non-53 ports so)."""
    return [dns.nameserver.Do53Nameserver(ns.host, ns.port) for ns in nameservers]


@dataclass(frozen=True, kw_only=True)
class Lookup:
    """The outcome of one question. `records` are presentation strings: TXT strings joined with no
    separator (RFC 7208 §3.3), MX as `preference host`, names without the trailing dot."""

    name: str
    rdtype: str
    status: DnsStatus
    records: tuple[str, ...] = ()
    detail: str = ""
    cname_chain: tuple[str, ...] = ()
    cname_failure: CnameFailure | None = None

    @property
    def ok(self) -> bool:
        return self.status is DnsStatus.OK

    @property
    def is_outage(self) -> bool:
        """True when the answer is unknown: never treat this as a missing record."""
        return self.status in OUTAGES

    @property
    def is_cname_loop(self) -> bool:
        """A CNAME chain that comes back to itself: the zone's error, the same at every retry."""
        return self.cname_failure is CnameFailure.LOOP

    @property
    def is_void(self) -> bool:
        """NXDOMAIN or an empty answer: a "void lookup" in RFC 7208 §4.6.4's terms."""
        return self.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA)

    def describe_failure(self) -> str:
        """A sentence naming the name, the type and what went wrong."""
        what = {
            DnsStatus.NXDOMAIN: "does not exist (NXDOMAIN)",
            DnsStatus.NODATA: f"has no {self.rdtype} record",
            DnsStatus.SERVFAIL: "failed: the server answered SERVFAIL",
            DnsStatus.REFUSED: "failed: the server answered REFUSED",
            DnsStatus.TIMEOUT: "failed: no answer before the timeout",
            DnsStatus.TRUNCATED: "failed: the answer was truncated and the TCP retry failed",
            DnsStatus.ERROR: "failed",
        }.get(self.status, "succeeded")
        text = f"{self.rdtype} lookup for {self.name} {what}"
        return f"{text} ({self.detail})" if self.detail and self.status is DnsStatus.ERROR else text


@dataclass(frozen=True, kw_only=True)
class SignedLookup:
    """A question asked for DNSSEC validation: with the DO bit, so the answer carries its RRSIGs
    (RFC 4035 §3.2.1), and with CD, so a validating resolver hands over even data it judges bogus
    (§3.2.2) and the check can say why. No CNAME is followed: a record is validated where it is."""

    name: str
    rdtype: str
    status: DnsStatus
    rrset: dns.rrset.RRset | None = None  # the records of `rdtype` at `name`, as signed
    rrsigs: dns.rrset.RRset | None = None  # the RRSIGs covering them
    zone: str | None = None  # the zone that answered: the signer, or the SOA owner of a negative answer
    detail: str = ""
    # the records of `rdtype` at `name` as the wire reader prints them, and whether an RRSIG covers
    # them: kept even when dnspython refuses a record (handlers.domain.dane judges such records)
    records: tuple[str, ...] = ()
    has_rrsig: bool = False

    @property
    def is_outage(self) -> bool:
        return self.status in OUTAGES

    def as_lookup(self) -> Lookup:
        """The plain Lookup, for the sentences every outage is reported with."""
        return Lookup(name=self.name, rdtype=self.rdtype, status=self.status, detail=self.detail)


def normalise_name(name: str) -> str:
    """Lower-case, without the trailing dot: the key every lookup and comparison uses."""
    return name.strip().rstrip(".").lower()


def _rdata_text(rdata: object, rdtype: int) -> str:
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        # dnspython's to_text() keeps chunks as separate quoted strings; join them (RFC 7208 §3.3).
        return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.MX:
        host = normalise_name(rdata.exchange.to_text())  # type: ignore[attr-defined]
        return f"{rdata.preference} {host}"  # type: ignore[attr-defined]
    if rdtype in (dns.rdatatype.CNAME, dns.rdatatype.PTR, dns.rdatatype.NS):
        return normalise_name(rdata.target.to_text())  # type: ignore[attr-defined]
    return str(rdata.to_text())  # type: ignore[attr-defined]


class InflightLimit:
    """Slots for queries in flight, with a window that shrinks when our own load causes timeouts
    (halved at most once per timeout period, as one burst's drops all time out together) and grows
    back by one slot per window's worth of answers (additive increase, as TCP's congestion window).

    One per session and event loop: the asyncio futures it holds belong to one loop."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.window = float(ceiling)
        self.in_flight = 0
        self.peak = 0
        self.waits = 0  # acquisitions that had to wait for a slot: the mark of our own load
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = float("-inf")

    async def acquire(self) -> None:
        if self.in_flight < int(self.window) and not self._waiters:
            self._take()
            return
        self.waits += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled: give it back
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def loaded_since(self, waits_before: int) -> bool:
        """True when some query waited for a slot since `waits_before` was read, or the window is
        already cut: a timeout then is more likely our burst than the domain's DNS."""
        return self.waits != waits_before or self.window < self.ceiling

    def answered(self) -> None:
        if self.window < self.ceiling:
            self.window = min(float(self.ceiling), self.window + 1 / self.window)
            self._wake()

    def congested(self, now: float, period: float) -> None:
        if now - self._last_cut >= period:
            self.window = max(float(min(MIN_WINDOW, self.ceiling)), self.window / 2)
            self._last_cut = now

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.window):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)


@dataclass(kw_only=True)
class DnsSession:
    """Answers questions through the configured nameservers, each at most once per session."""

    nameservers: tuple[Nameserver, ...] = ()
    timeout: float = 2.0  # per attempt
    attempts: int = 2  # per nameserver, for timeouts only
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    queries_sent: int = 0
    congestion_retries: int = 0  # timeouts under our own load that were asked again
    _answered: int = field(default=0, repr=False)
    _failed: int = field(default=0, repr=False)
    max_answers: int = DEFAULT_MAX_ANSWERS
    _answers: OrderedDict[tuple[str, str], Lookup] = field(default_factory=OrderedDict, repr=False)
    _pending: dict[tuple[str, str], asyncio.Future[Lookup]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _limits: dict[asyncio.AbstractEventLoop, InflightLimit] = field(default_factory=dict, repr=False)
    _signed: OrderedDict[tuple[str, str], SignedLookup] = field(default_factory=OrderedDict, repr=False)
    _signed_pending: dict[tuple[str, str], asyncio.Future[SignedLookup]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if not self.nameservers:
            self.nameservers = system_nameservers() or (Nameserver("127.0.0.1"),)
        if self.max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")

    @property
    def peak_inflight(self) -> int:
        """The most queries this session had in flight at once."""
        return max((limit.peak for limit in self._limits.values()), default=0)

    def _limit(self) -> InflightLimit:
        loop = asyncio.get_running_loop()
        limit = self._limits.get(loop)
        if limit is None:
            # A loop that has ended (an earlier asyncio.run) holds no waiter any more.
            self._limits = {old: lim for old, lim in self._limits.items() if not old.is_closed()}
            limit = self._limits[loop] = InflightLimit(self.max_inflight)
        return limit

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        """Ask `name`/`rdtype`, following CNAMEs; concurrent identical questions share one query."""
        key = (normalise_name(name), rdtype.upper())
        with self._lock:
            known = self._answers.get(key)
            if known is not None:
                self._answers.move_to_end(key)  # in use: the last to be forgotten
                return known
        self._loop = asyncio.get_running_loop()
        return await _first_asker(self._pending, key, functools.partial(self._resolve_and_remember, key))

    async def _resolve_and_remember(self, key: tuple[str, str]) -> Lookup:
        result = await self._resolve(*key)
        with self._lock:
            self._answers[key] = result
            self._answers.move_to_end(key)
            self._answered += 1
            self._failed += result.is_outage
            while len(self._answers) > self.max_answers:
                self._answers.popitem(last=False)
        return result

    async def lookup_many(self, questions: Iterable[tuple[str, str]]) -> list[Lookup]:
        """Ask several questions at once; the answers come back in the order asked."""
        asked = [(normalise_name(name), rdtype.upper()) for name, rdtype in questions]
        known: list[Lookup | None] = []
        with self._lock:
            for key in asked:
                answer = self._answers.get(key)
                if answer is not None:
                    self._answers.move_to_end(key)  # in use: the last to be forgotten
                known.append(answer)
        missing = [key for key, answer in zip(asked, known, strict=True) if answer is None]
        if not missing:
            return [answer for answer in known if answer is not None]
        # A task for each question still to ask only: a remembered answer needs none, and a
        # monitor cycle's shared includes are asked by every domain.
        fetched = iter(await asyncio.gather(*(self.lookup(name, rdtype) for name, rdtype in missing)))
        return [answer if answer is not None else next(fetched) for answer in known]

    async def lookup_signed(self, name: str, rdtype: str) -> SignedLookup:
        """Ask `name`/`rdtype` with its DNSSEC signatures (see SignedLookup), once per session."""
        key = (normalise_name(name), rdtype.upper())
        known = self._signed.get(key)
        if known is not None:
            self._signed.move_to_end(key)
            return known
        # concurrent askers share one query, as in lookup: a provider's MX host or parent zone is
        # asked by many domains of a cycle at once
        pending = self._signed_pending
        return await _first_asker(pending, key, functools.partial(self._ask_signed_and_remember, key))

    async def _ask_signed_and_remember(self, key: tuple[str, str]) -> SignedLookup:
        failure = SignedLookup(
            name=key[0], rdtype=key[1], status=DnsStatus.ERROR, detail="no nameserver configured"
        )
        for server in self.nameservers:
            for _ in range(self.attempts):
                # paced as every other query: a burst a resolver drops is our load, not an outage
                failure = await self._paced(functools.partial(self._ask_signed, server, *key))
                if failure.status is not DnsStatus.TIMEOUT:
                    break
            if not failure.is_outage:
                break
        self._signed[key] = failure
        while len(self._signed) > self.max_answers:  # remembered as plain answers are (see lookup)
            self._signed.popitem(last=False)
        return failure

    async def _ask_signed(self, server: Nameserver, name: str, rdtype: str) -> SignedLookup:
        try:
            encoded, _ = encode_name(name)
            wanted = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException as error:
            return SignedLookup(
                name=name, rdtype=rdtype, status=DnsStatus.ERROR, detail=f"not a valid DNS question: {error}"
            )
        query = build_query(encoded, wanted, EDNS_PAYLOAD, dnssec=True)
        self.queries_sent += 1
        message: dns.message.Message | None = None
        try:
            response, wire = await _exchange_udp(query, server, self.timeout)
            if response.truncated:
                # a signed answer (DNSKEY sets above all) is often over the UDP size: TCP then
                # (RFC 7766)
                self.queries_sent += 1
                tcp_query = dns.message.make_query(
                    name, wanted, want_dnssec=True, use_edns=0, payload=EDNS_PAYLOAD
                )
                tcp_query.flags |= dns.flags.RD | dns.flags.CD
                message = await dns.asyncquery.tcp(tcp_query, server.host, self.timeout, server.port)
                response = _from_message(message)
        except TimeoutError:
            return SignedLookup(name=name, rdtype=rdtype, status=DnsStatus.TIMEOUT, detail=f"server {server}")
        except (OSError, EOFError, MalformedAnswer, dns.exception.DNSException) as error:
            return SignedLookup(
                name=name,
                rdtype=rdtype,
                status=DnsStatus.ERROR,
                detail=f"server {server}: {error or type(error).__name__}",
            )
        status = _SIGNED_STATUS.get(response.rcode, DnsStatus.ERROR)
        if status is not DnsStatus.OK:
            return SignedLookup(name=name, rdtype=rdtype, status=status, detail=f"server {server}")
        if not response.records:
            # Nothing at the name: the zone is the SOA's owner, and the answer read by offsets
            # says so. Most zones are unsigned, and this is then every signed question a monitor
            # cycle asks; dnspython's full parse is kept for answers with records to verify.
            return SignedLookup(name=name, rdtype=rdtype, status=DnsStatus.NODATA, zone=response.soa_owner)
        records = tuple(text for at, kind, text in response.records if at == name and kind == wanted)
        has_rrsig = any(
            kind == dns.rdatatype.RRSIG and text.split(" ", 1)[0] == rdtype
            for at, kind, text in response.records
            if at == name
        )
        try:
            message = message or dns.message.from_wire(wire)
        except dns.exception.DNSException as error:
            if records:
                # a record dnspython refuses (a TLSA digest of the wrong length) is the zone's
                # mistake, not an outage: the records as read are the answer, to be judged
                return SignedLookup(
                    name=name, rdtype=rdtype, status=DnsStatus.OK, records=records, has_rrsig=has_rrsig
                )
            detail = f"server {server}: {error}"
            return SignedLookup(name=name, rdtype=rdtype, status=DnsStatus.ERROR, detail=detail)
        question = dns.name.from_text(name)
        rrset = message.get_rrset(message.answer, question, dns.rdataclass.IN, wanted)
        rrsigs = message.get_rrset(message.answer, question, dns.rdataclass.IN, dns.rdatatype.RRSIG, wanted)
        zone = None
        if rrsigs is not None:
            zone = normalise_name(next(iter(rrsigs)).signer.to_text())
        else:
            soa = next((r for r in message.authority if r.rdtype == dns.rdatatype.SOA), None)
            zone = normalise_name(soa.name.to_text()) if soa is not None else response.soa_owner
        return SignedLookup(
            name=name,
            rdtype=rdtype,
            status=DnsStatus.OK if rrset is not None else DnsStatus.NODATA,
            rrset=rrset,
            rrsigs=rrsigs,
            zone=zone,
            records=records,
            has_rrsig=has_rrsig or rrsigs is not None,
        )

    def all_failed(self) -> bool:
        """True when every question so far ended in an outage: DNS could not be reached at all."""
        # Counted as answers arrive: reading every remembered answer for each domain of a cycle
        # would cost the cycle time in the square of its size.
        return self._answered > 0 and self._failed == self._answered

    def lookup_blocking(self, name: str, rdtype: str) -> Lookup:
        """The same, for libraries that call DNS synchronously from a worker thread (pyspf)."""
        key = (normalise_name(name), rdtype.upper())
        with self._lock:
            known = self._answers.get(key)
        if known is not None:
            return known
        loop = self._loop
        if loop is not None and loop.is_running() and not _in_loop_thread(loop):
            return asyncio.run_coroutine_threadsafe(self.lookup(name, rdtype), loop).result()
        return asyncio.run(self.lookup(name, rdtype))

    async def _resolve(self, name: str, rdtype: str) -> Lookup:
        try:
            if not name:
                raise dns.name.EmptyLabel
            encoded, owner = encode_name(name)
            wanted = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException as error:
            # A name from a record or a message can be malformed (an empty label, a label over
            # 63 octets): no server can answer it, and it must not raise into the caller.
            return Lookup(
                name=name, rdtype=rdtype, status=DnsStatus.ERROR, detail=f"not a valid DNS question: {error}"
            )
        chain: list[str] = []
        current = name
        while True:
            outcome = await self._ask_servers(current, encoded, rdtype, wanted)
            if isinstance(outcome, Lookup):
                return _with_chain(outcome, name, chain)
            # A server follows CNAMEs through the zones it serves, so one response can hold
            # several hops: every one of them counts, for the chain, the loop and the hop limit.
            records, followed = _read_answer(outcome, owner, wanted)
            for target in followed:
                if target == name or target in chain:
                    return Lookup(
                        name=name,
                        rdtype=rdtype,
                        status=DnsStatus.ERROR,
                        detail=f"CNAME loop at {target}",
                        cname_chain=tuple(chain),
                        cname_failure=CnameFailure.LOOP,
                    )
                chain.append(target)
                if len(chain) > MAX_CNAME_HOPS:
                    return Lookup(
                        name=name,
                        rdtype=rdtype,
                        status=DnsStatus.ERROR,
                        detail="CNAME chain too long",
                        cname_chain=tuple(chain),
                        cname_failure=CnameFailure.TOO_LONG,
                    )
            if records or not followed:
                status = DnsStatus.OK if records else _empty_status(outcome)
                return Lookup(
                    name=name, rdtype=rdtype, status=status, records=tuple(records), cname_chain=tuple(chain)
                )
            current = chain[-1]  # the response stops at a CNAME: ask its target
            try:
                encoded, owner = encode_name(current)
            except dns.exception.DNSException as error:
                return Lookup(
                    name=name,
                    rdtype=rdtype,
                    status=DnsStatus.ERROR,
                    detail=f"CNAME to a name no query can carry: {error}",
                    cname_chain=tuple(chain),
                )

    async def _ask_servers(self, name: str, encoded: bytes, rdtype: str, wanted: int) -> WireAnswer | Lookup:
        """The response from the first server that answers, or the last failure."""
        failure = Lookup(name=name, rdtype=rdtype, status=DnsStatus.ERROR, detail="no nameserver configured")
        for server in self.nameservers:
            for _ in range(self.attempts):
                # One attempt in a slot of the in-flight bound; a timeout under our own load is
                # asked again after a backoff (see _paced), and only the last one comes back here.
                ask = functools.partial(self._ask_once, server, name, encoded, rdtype, wanted)
                outcome = await self._paced(ask)
                if not isinstance(outcome, Lookup):
                    return outcome
                failure = outcome
                if outcome.status is not DnsStatus.TIMEOUT:
                    break  # SERVFAIL/REFUSED/TCP failure: this server will say the same again
        return failure

    async def _paced(self, ask: Callable[[], Awaitable[_Outcome]]) -> _Outcome:
        limit = self._limit()
        retry = 0
        while True:
            waits_before = limit.waits
            await limit.acquire()
            try:
                outcome = await ask()
            finally:
                limit.release()
            timed_out = isinstance(outcome, Lookup | SignedLookup) and outcome.status is DnsStatus.TIMEOUT
            if not timed_out:
                limit.answered()
                return outcome
            if retry >= CONGESTION_RETRIES or not limit.loaded_since(waits_before):
                return outcome
            limit.congested(asyncio.get_running_loop().time(), self.timeout)
            self.congestion_retries += 1
            await asyncio.sleep(CONGESTION_BACKOFF * 2**retry * (0.5 + random.random()))
            retry += 1

    async def _ask_once(
        self, server: Nameserver, name: str, encoded: bytes, rdtype: str, wanted: int
    ) -> WireAnswer | Lookup:
        query = build_query(encoded, wanted, EDNS_PAYLOAD)
        self.queries_sent += 1
        try:
            response, _ = await _exchange_udp(query, server, self.timeout)
        except TimeoutError:
            return Lookup(name=name, rdtype=rdtype, status=DnsStatus.TIMEOUT, detail=f"server {server}")
        except (OSError, MalformedAnswer) as error:
            return Lookup(
                name=name, rdtype=rdtype, status=DnsStatus.ERROR, detail=f"server {server}: {error}"
            )
        if response.truncated:
            self.queries_sent += 1
            # The rare large answer goes through dnspython's TCP path (RFC 7766).
            tcp_query = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
            tcp_query.flags |= dns.flags.RD
            try:
                message = await dns.asyncquery.tcp(tcp_query, server.host, self.timeout, server.port)
            except (OSError, EOFError, dns.exception.DNSException) as error:
                return Lookup(
                    name=name,
                    rdtype=rdtype,
                    status=DnsStatus.TRUNCATED,
                    detail=f"server {server}: {error or type(error).__name__}",
                )
            response = _from_message(message)
        rcode = response.rcode
        if rcode == dns.rcode.SERVFAIL:
            return Lookup(name=name, rdtype=rdtype, status=DnsStatus.SERVFAIL, detail=f"server {server}")
        if rcode == dns.rcode.REFUSED:
            return Lookup(name=name, rdtype=rdtype, status=DnsStatus.REFUSED, detail=f"server {server}")
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return Lookup(
                name=name,
                rdtype=rdtype,
                status=DnsStatus.ERROR,
                detail=f"server {server} answered {dns.rcode.to_text(dns.rcode.Rcode.make(rcode))}",
            )
        return response


async def _exchange_udp(query: WireQuery, server: Nameserver, timeout: float) -> tuple[WireAnswer, bytes]:
    """Send `query` to `server` over UDP from a fresh socket (a new source port per query, RFC
    5452) connected to it, so only its datagrams arrive; the answer read and its bytes, or
    TimeoutError. A datagram that is not the answer to `query` (a stray, a spoof) is ignored."""
    # A bare non-blocking socket watched by the loop: an asyncio transport and protocol per
    # query cost more than the query itself, and a monitor cycle sends a hundred thousand.
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[tuple[WireAnswer, bytes]] = loop.create_future()
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((server.host, server.port))

        def readable() -> None:
            while not answer.done():
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    return
                except OSError as error:  # ICMP unreachable: nothing listens there
                    answer.set_exception(error)
                    return
                try:
                    response = read_answer(data, query)
                except MalformedAnswer as error:
                    answer.set_exception(error)
                    return
                if response is not None:
                    answer.set_result((response, data))

        def expire() -> None:
            if not answer.done():
                answer.set_exception(TimeoutError())

        fileno = sock.fileno()
        loop.add_reader(fileno, readable)
        deadline = loop.call_later(timeout, expire)
        try:
            sock.send(query.wire)
            return await answer
        finally:
            deadline.cancel()
            loop.remove_reader(fileno)


async def _first_asker(
    pending: dict[tuple[str, str], asyncio.Future[_Answer]],
    key: tuple[str, str],
    resolve: Callable[[], Awaitable[_Answer]],
) -> _Answer:
    """The answer to `key`: awaited from the asker already resolving it on this loop, or resolved
    here (`resolve` also remembers it) and handed to whoever asks meanwhile through a future. A task
    per question would cost a monitor cycle a task (and its scheduling) for each of its hundred
    thousand queries."""
    loop = asyncio.get_running_loop()
    asked = pending.get(key)
    if asked is not None and asked.get_loop() is loop:
        return await asked  # the same question in flight: its answer, not a second query
    asked = pending[key] = loop.create_future()
    try:
        result = await resolve()
    except BaseException as error:
        if isinstance(error, asyncio.CancelledError):
            asked.cancel()  # the first asker's check was cancelled: so are the waiters' asks
        elif not asked.done():
            asked.set_exception(error)
            asked.exception()  # handed to any waiter; with none, not logged as never retrieved
        raise
    finally:
        if pending.get(key) is asked:  # not another loop's question since
            del pending[key]
    if not asked.done():  # a waiter cancelled it: the answer is remembered all the same
        asked.set_result(result)
    return result


def _from_message(message: dns.message.Message) -> WireAnswer:
    """A dnspython response (from the TCP path) in the form the UDP path reads."""
    records = {
        (normalise_name(rrset.name.to_text()), rrset.rdtype, _rdata_text(rdata, rrset.rdtype)): None
        for rrset in message.answer
        if rrset.rdclass == dns.rdataclass.IN
        for rdata in rrset
    }
    soa = next((r for r in message.authority if r.rdtype == dns.rdatatype.SOA), None)
    soa_owner = normalise_name(soa.name.to_text()) if soa is not None else None
    return WireAnswer(message.rcode(), bool(message.flags & dns.flags.TC), tuple(records), soa_owner)


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _read_answer(response: WireAnswer, owner: str, wanted: int) -> tuple[list[str], list[str]]:
    """The records of type `wanted` at the end of any CNAME chain from `owner` in this response,
    and the CNAME targets followed to get there, in order (the last one is to be asked when there
    are no records). A looping chain stops at the first repeated target, which the caller reports.
    `owner` is in presentation form, as the wire reader prints owners (encode_name): a name from
    an SPF macro may hold a space, which is `\\032` there (RFC 1035 §5.1)."""
    seen = {owner}
    followed: list[str] = []
    while True:
        records = [text for at, kind, text in response.records if at == owner and kind == wanted]
        if records:
            return records, followed
        cname = next(
            (text for at, kind, text in response.records if at == owner and kind == dns.rdatatype.CNAME),
            None,
        )
        if cname is None or wanted == dns.rdatatype.CNAME:
            return [], followed
        owner = cname
        followed.append(owner)
        if owner in seen:
            return [], followed
        seen.add(owner)


def _empty_status(response: WireAnswer) -> DnsStatus:
    return DnsStatus.NXDOMAIN if response.rcode == dns.rcode.NXDOMAIN else DnsStatus.NODATA


def _with_chain(lookup: Lookup, name: str, chain: list[str]) -> Lookup:
    if not chain:
        return lookup
    return dataclasses.replace(lookup, name=name, cname_chain=tuple(chain))
