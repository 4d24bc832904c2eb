"""A forwarding DNS proxy on loopback that injects the faults real networks produce.

Added latency delays each answer without serialising them: UDP queries wait in one thread's
schedule (and their upstream answers in its selector), so thousands in flight cost no thread each;
each TCP connection has its own thread. Faults are chosen by query name (and optionally type):

- ``servfail`` / ``refused``: answered at once with that rcode, nothing forwarded;
- ``timeout``: the query is dropped and never answered (over TCP the connection stays open);
- ``truncate``: over UDP an empty answer with TC set; over TCP the connection is closed without an
  answer, so the client's TCP retry fails too;
- ``truncate_ok``: over UDP an empty answer with TC set; over TCP forwarded normally (a real TCP
  fallback).

Concurrency is counted: `in_flight` is the queries received and not yet answered (or dropped), and
`peak_in_flight` the most at once since the last `reset_counts`. With `burst_limit` set, a query that
arrives while that many are in flight is dropped unanswered, as dnsmasq drops what exceeds its
`dns-forward-max`; `dropped` counts them.

A fault's name is an exact name (case-insensitive, trailing dot optional) or ``*.suffix``, which
matches every name strictly under suffix (not suffix itself). When several faults match, the one
added last wins. Queries that match no fault are forwarded to the upstream over the same transport,
so the upstream's own truncation (NSD truncates large UDP answers) reaches the client unchanged.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

FAULT_KINDS = frozenset({"servfail", "refused", "timeout", "truncate", "truncate_ok"})
UPSTREAM_TIMEOUT = 5.0


@dataclass(order=True)
class _Waiting:
    """A UDP query waiting out the added latency, in the order it is due."""

    due: float
    sequence: int  # ties in `due` go in arrival order; nothing after this is compared
    wire: bytes = field(compare=False)
    client: tuple[str, int] = field(compare=False)
    query: dns.message.Message | None = field(compare=False)
    fault: str | None = field(compare=False)


@dataclass(frozen=True)
class Fault:
    name: str  # lower-case, no trailing dot; "*.suffix" for a subtree
    kind: str
    rdtype: str | None = None

    def matches(self, qname: str, qtype: str) -> bool:
        if self.rdtype is not None and self.rdtype != qtype:
            return False
        if self.name.startswith("*."):
            return qname.endswith("." + self.name[2:])
        return qname == self.name


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


class FaultProxy:
    """Forwards DNS queries from 127.0.0.1:`port` to `upstream`, with latency and faults.
    `listen` binds another address and port instead (a tool that reaches only port 53, such as
    checkdmarc's command line, needs 127.x.y.z:53)."""

    host = "127.0.0.1"

    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] | None = None) -> None:
        if listen is not None:
            self.host = listen[0]
        self._listen_port = listen[1] if listen is not None else 0
        self.upstream = (upstream[0], int(upstream[1]))
        self.latency: float = 0.0
        self.queries: list[tuple[str, str, str]] = []
        self.burst_limit: int | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.dropped = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._port: int | None = None
        self._sequence = itertools.count()

    # -- configuration -------------------------------------------------------------------------
    def add_fault(self, name: str, kind: str, rdtype: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULT_KINDS)}")
        wanted = rdtype.upper() if rdtype else None
        if wanted is not None:
            dns.rdatatype.from_text(wanted)  # a typo in a test is an error, not a silent no-op
        with self._lock:
            self._faults.append(Fault(_norm(name), kind, wanted))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.queries.clear()
            self.peak_in_flight = self.in_flight
            self.dropped = 0

    def count(self, name: str | None = None, rdtype: str | None = None, transport: str | None = None) -> int:
        """How many queries matched (each argument optional)."""
        with self._lock:
            return sum(
                1
                for q_name, q_type, q_transport in self.queries
                if (name is None or q_name == _norm(name))
                and (rdtype is None or q_type == rdtype.upper())
                and (transport is None or q_transport == transport)
            )

    # -- addresses and lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        if self._udp is not None:
            raise RuntimeError("FaultProxy already started")
        self._stopping.clear()
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self._listen_port))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(128)
            break
        else:
            raise RuntimeError("FaultProxy found no port free for both UDP and TCP")
        udp.settimeout(0.05)
        tcp.settimeout(0.05)
        self._udp, self._tcp, self._port = udp, tcp, port
        for target, label in ((self._serve_udp, "udp"), (self._serve_tcp, "tcp")):
            thread = threading.Thread(target=target, name=f"fault-proxy-{label}-{port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening, drop held connections and wait for every handler thread."""
        if self._udp is None:
            return
        self._stopping.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=UPSTREAM_TIMEOUT + 1)
        self._threads.clear()
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None

    def __enter__(self) -> FaultProxy:
        if self._udp is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        return f"<FaultProxy {where} -> {self.upstream[0]}:{self.upstream[1]}>"

    # -- serving -------------------------------------------------------------------------------
    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        sock = self._udp
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        waiting: list[_Waiting] = []  # a heap: the next query whose latency is over first
        upstreams: dict[socket.socket, tuple[tuple[str, int], float]] = {}  # -> client, deadline
        try:
            while not self._stopping.is_set():
                timeout = 0.05
                if waiting:
                    timeout = min(timeout, max(0.0, waiting[0].due - time.monotonic()))
                for key, _ in selector.select(timeout):
                    if key.fileobj is sock:
                        self._receive_udp(sock, waiting)
                    else:
                        upstream = key.fileobj
                        assert isinstance(upstream, socket.socket)
                        client, _ = upstreams.pop(upstream)
                        selector.unregister(upstream)
                        self._relay_udp(upstream, client)
                now = time.monotonic()
                while waiting and waiting[0].due <= now:
                    self._release_udp(heapq.heappop(waiting), selector, upstreams, now)
                for upstream, (_, deadline) in list(upstreams.items()):
                    if deadline <= now:  # the upstream never answered: neither do we
                        del upstreams[upstream]
                        selector.unregister(upstream)
                        upstream.close()
                        self._done()
        finally:
            for upstream in upstreams:
                upstream.close()
            selector.close()

    def _receive_udp(self, sock: socket.socket, waiting: list[_Waiting]) -> None:
        while True:
            try:
                wire, client = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self._admit():
                continue
            query, fault = self._fault_for(wire, "udp")
            due = time.monotonic() + max(self.latency, 0.0)
            heapq.heappush(waiting, _Waiting(due, next(self._sequence), wire, client, query, fault))

    def _release_udp(
        self,
        item: _Waiting,
        selector: selectors.BaseSelector,
        upstreams: dict[socket.socket, tuple[tuple[str, int], float]],
        now: float,
    ) -> None:
        """A query whose latency is over: dropped, answered with its fault, or sent upstream."""
        if item.fault == "timeout":
            self._done()
            return
        if item.query is not None and item.fault in ("servfail", "refused", "truncate", "truncate_ok"):
            self._done()
            self._send_udp(_synthesise(item.query, item.fault).to_wire(), item.client)
            return
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.setblocking(False)
        try:
            upstream.sendto(item.wire, self.upstream)
        except OSError:
            upstream.close()
            self._done()
            return
        selector.register(upstream, selectors.EVENT_READ)
        upstreams[upstream] = (item.client, now + UPSTREAM_TIMEOUT)

    def _relay_udp(self, upstream: socket.socket, client: tuple[str, int]) -> None:
        try:
            answer: bytes | None = upstream.recv(65535)
        except OSError:
            answer = None
        upstream.close()
        # Out of flight before the answer leaves: the client may send its next query at once.
        self._done()
        if answer is not None:
            self._send_udp(answer, client)

    def _send_udp(self, answer: bytes, client: tuple[str, int]) -> None:
        if self._udp is not None:
            with contextlib.suppress(OSError):
                self._udp.sendto(answer, client)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        sock = self._tcp
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._handle_tcp, conn)

    def _fault_for(self, wire: bytes, transport: str) -> tuple[dns.message.Message | None, str | None]:
        """Parse and record the query; return it with the fault that applies, if any."""
        try:
            query = dns.message.from_wire(wire)
            question = query.question[0]
        except (dns.exception.DNSException, IndexError, ValueError):
            return None, None
        qname = _norm(question.name.to_text())
        qtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((qname, qtype, transport))
            fault = next((f for f in reversed(self._faults) if f.matches(qname, qtype)), None)
        return query, fault.kind if fault else None

    def _delay(self) -> bool:
        """Wait the added latency; False when the proxy is stopping meanwhile."""
        if self.latency > 0:
            self._stopping.wait(self.latency)
        return not self._stopping.is_set()

    def _admit(self) -> bool:
        """Count a query in flight; False (and counted as dropped) past the burst limit."""
        with self._lock:
            if self.burst_limit is not None and self.in_flight >= self.burst_limit:
                self.dropped += 1
                return False
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return True

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handle_tcp(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            conn.settimeout(None)
            while not self._stopping.is_set():
                wire = _read_framed(conn)
                if wire is None:
                    return
                query, fault = self._fault_for(wire, "tcp")
                if not self._admit():
                    continue  # dropped: the client's TCP read times out
                try:
                    alive = self._delay()
                finally:
                    self._done()
                if not alive:
                    return
                if fault == "truncate":
                    return  # close without answering: the TCP retry fails
                if fault == "timeout":
                    continue  # hold the connection, never answer
                if query is not None and fault in ("servfail", "refused"):
                    answer: bytes | None = _synthesise(query, fault).to_wire()
                else:
                    answer = self._forward_tcp(wire)
                if answer is None:
                    return
                conn.sendall(struct.pack("!H", len(answer)) + answer)
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _forward_tcp(self, wire: bytes) -> bytes | None:
        try:
            with socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT) as upstream:
                upstream.sendall(struct.pack("!H", len(wire)) + wire)
                return _read_framed(upstream)
        except OSError:
            return None


def _synthesise(query: dns.message.Message, fault: str) -> dns.message.Message:
    response = dns.message.make_response(query)
    if fault == "servfail":
        response.set_rcode(dns.rcode.SERVFAIL)
    elif fault == "refused":
        response.set_rcode(dns.rcode.REFUSED)
    else:  # truncate, truncate_ok: no records, TC set
        response.flags |= dns.flags.TC | dns.flags.AA
    return response


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_framed(conn: socket.socket) -> bytes | None:
    """One length-prefixed DNS message from a TCP stream, or None at end of stream."""
    header = _read_exact(conn, 2)
    if header is None:
        return None
    return _read_exact(conn, struct.unpack("!H", header)[0])
