"""Benchmark: wall time of one domain check over a slow DNS, ours against checkdmarc.

    .venv/bin/python -m benchmarks.check_latency [--runs 7] [--latency 0.05]

Needs NSD (`apt-get install -y nsd`); no network: everything is served on loopback.

What runs: NSD (tests/dnstest) serves a realistic domain, `brand.example`, and its providers' zones
(each its own NSD zone): an SPF record with 8 DNS-querying terms whose includes nest three deep, a
DMARC record whose external rua is authorised by `_report._dmarc`, two MX hosts with A records and
DKIM keys (real RSA 2048) at the common selectors `google` and `selector1`. A FaultProxy in front of
NSD adds --latency seconds to every query (concurrent queries are delayed side by side, not one
after another); both tools ask the proxy, and only the proxy.

What is timed, in this one process (so neither side pays interpreter start-up or imports, and one
untimed warm-up run of each comes first):
- ours: `asyncio.run(check_domain(domain, DnsSession(...), ()))`: the whole check (DMARC, SPF, MX,
  and DKIM probing of every common selector);
- checkdmarc: `checkdmarc.spf.check_spf` + `checkdmarc.dmarc.check_dmarc` only (it has no DKIM).
  checkdmarc caches answers process-wide (`checkdmarc.utils.DNS_CACHE`, 30 minutes): the cache is
  cleared before each of its runs, untimed, or its later runs would ask no DNS at all.
Runs alternate (ours, checkdmarc, checkdmarc, ours, ...), --runs of each; the table gives the median,
min and max, and the queries each side sent per run as counted by the proxy.

The critical path is the longest chain of lookups that each need the previous answer, derived from
the zone built here (printed with the chain), times --latency: no resolver can finish sooner.
Goals: ours at least 5x faster than checkdmarc's SPF+DMARC alone, and within 2x of the
critical path (the MX hosts' chain counted too; the HTTPS fetches, which are not DNS, are not).
A benchmark of a broken check is meaningless, so both sides' results are checked
first (no dns.temperror, the designed SPF lookup count) and the run stops if they are wrong.

Then command line against command line, on the same zone, which also publishes MTA-STS (its policy
served over HTTPS by a local server with a test CA, on a 127.x address, port 443), TLS-RPT and BIMI
(its logo on the same server): checkdmarc's CLI (`checkdmarc DOMAIN -n ADDRESS`, which checks NS,
MX, SPF, DMARC, DNSSEC, MTA-STS, TLS-RPT, BIMI and SOA) in a subprocess, asking the proxy, which
listens on a 127.x address's port 53 for it (its `-n` takes addresses only); net of start-up: the
median wall time of `checkdmarc --version`, which imports the same modules, is subtracted. Ours is
timed in-process (no start-up). Two phases: with the HTTPS server up (ours fetches the policy and
the logo; checkdmarc fetches through `requests` and the system's resolver, which cannot resolve the
test names, so its fetches fail at once: in its favour), and with it down (every HTTPS fetch is
refused at once, so the figure is the DNS work alone). Goal: ours at least 5x faster in both.

Exit status: 0 when every goal passes, 1 when one is missed or a result is not sane, 2 without NSD
or without root (ports 443 and 53),
130 when interrupted. NSD, the proxy and the HTTPS server are stopped on every way out, Ctrl-C and
SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.dns.resolver import DnsSession, Nameserver, checkdmarc_nameservers
from handlers.domain.check import DomainReport, check_domain
from handlers.domain.dkim_keys import COMMON_SELECTORS
from handlers.https_fetch import HttpsClient
from tests.dnstest import FaultProxy, NsdServer, find_nsd, make_zone
from tests.httpstest import HttpsServer, LocalCa, Page

DOMAIN = "brand.example"
SELECTORS = ("google", "selector1")  # both among COMMON_SELECTORS: found by probing
RUA_HOST = "reports.dmarcvendor.example"
GOAL_VS_PEER = 5.0
GOAL_VS_CRITICAL = 2.0

# -- the zone ------------------------------------------------------------------------------------
# SPF as designed, name -> record. The DNS-querying terms (RFC 7208 §4.6.4) are marked:
#   brand.example: a, mx, 3 includes                                  = 5
#   _spf.mailhost.example: include                                    = 1
#   _netblocks.mailhost.example: include                              = 1
#   spf.crmsender.example: include                                    = 1
#   others: ip4/ip6 only                                              = 0   -> 8 in all
SPF: dict[str, str] = {
    DOMAIN: (
        "v=spf1 a mx include:_spf.mailhost.example include:spf.crmsender.example "
        "include:_spf.helpdesk.example ~all"
    ),
    "_spf.mailhost.example": "v=spf1 include:_netblocks.mailhost.example ~all",
    "_netblocks.mailhost.example": (
        "v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/25 include:_netblocks3.mailhost.example ~all"
    ),
    "_netblocks3.mailhost.example": "v=spf1 ip6:2001:db8:10::/48 ip4:192.0.2.128/25 ~all",
    "spf.crmsender.example": "v=spf1 ip4:198.18.0.0/24 include:spf.esprelay.example ~all",
    "spf.esprelay.example": "v=spf1 ip4:198.18.10.0/24 ip4:198.18.11.0/24 ~all",
    "_spf.helpdesk.example": "v=spf1 ip4:198.19.0.0/24 -all",
}
MX_HOSTS = {"mx1.brand.example": "192.0.2.25", "mx2.brand.example": "192.0.2.26"}
DMARC = f"v=DMARC1; p=quarantine; sp=reject; rua=mailto:agg@{RUA_HOST},mailto:dmarc@{DOMAIN}; fo=1"
MTA_STS_POLICY = (
    "version: STSv1\nmode: enforce\n" + "".join(f"mx: {host}\n" for host in MX_HOSTS) + "max_age: 604800\n"
)
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">'
    b'<title>Brand</title><rect width="100" height="100" fill="#036"/></svg>'
)


def _dkim_record() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def build_zones(https_address: str) -> dict[str, str]:
    """origin -> zone text: the checked domain, each provider, and `example` above them all (so the
    DMARC tree walk's `_dmarc.example` gets a real NXDOMAIN, as from a real TLD). The MTA-STS policy
    host and the BIMI logo host are at `https_address`."""
    brand = [
        ("_mta-sts", "TXT", "v=STSv1; id=20260101T000000"),
        ("mta-sts", "A", https_address),
        ("_smtp._tls", "TXT", f"v=TLSRPTv1; rua=mailto:tls-reports@{DOMAIN}"),
        ("default._bimi", "TXT", f"v=BIMI1; l=https://bimi.{DOMAIN}/logo.svg"),
        ("bimi", "A", https_address),
        ("@", "TXT", SPF[DOMAIN]),
        ("@", "TXT", "google-site-verification=Xq3bench0nly4c7VbK2tR9aLmPzWe1uYhQdS5oN8fI6g"),
        ("@", "A", "192.0.2.10"),
        ("@", "MX", "10 mx1.brand.example."),
        ("@", "MX", "20 mx2.brand.example."),
        *((host.split(".")[0], "A", address) for host, address in MX_HOSTS.items()),
        ("_dmarc", "TXT", DMARC),
        *((f"{selector}._domainkey", "TXT", _dkim_record()) for selector in SELECTORS),
    ]
    providers: dict[str, list[tuple[str, str, str]]] = {}
    for name, record in SPF.items():
        if name == DOMAIN:
            continue
        origin = ".".join(name.split(".")[-2:])
        providers.setdefault(origin, []).append((f"{name}.", "TXT", record))
    # The report collector: the RFC 9990 authorisation, and the MX checkdmarc asks for.
    providers["dmarcvendor.example"] = [
        (f"{DOMAIN}._report._dmarc.reports", "TXT", "v=DMARC1"),
        ("reports", "MX", "10 inbound.dmarcvendor.example."),
        ("inbound", "A", "192.0.2.77"),
        ("@", "MX", "10 inbound.dmarcvendor.example."),
    ]
    zones = {DOMAIN: make_zone(DOMAIN, brand), "example": make_zone("example", [])}
    zones.update({origin: make_zone(origin, records) for origin, records in providers.items()})
    return zones


# -- the critical path, from the data above --------------------------------------------------------
def _spf_chain(name: str) -> list[str]:
    """The longest chain of dependent lookups below (and including) the TXT lookup of `name`."""
    best: list[str] = []
    for term in SPF[name].split()[1:]:
        body = term.lstrip("+-~?")
        if body.startswith("include:"):
            chain = _spf_chain(body.split(":", 1)[1])
        elif body == "mx" or body.startswith("mx:"):
            target = body.split(":", 1)[1] if ":" in body else name
            chain = [f"MX {target}", "A/AAAA of each MX host (all at once)"]
        elif body == "a" or body.startswith("a:"):
            chain = [f"A/AAAA {body.split(':', 1)[1] if ':' in body else name}"]
        else:
            continue
        if len(chain) > len(best):
            best = chain
    return [f"TXT {name}", *best]


def critical_path() -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The longest chain, and every part's chain (each part's lookups start at time zero)."""
    parts = [
        ("SPF (TXT, then each include level, a, mx)", _spf_chain(DOMAIN)),
        (
            "DMARC (tree walk, all names at once; then the rua authorisation)",
            [f"TXT _dmarc.{DOMAIN} + _dmarc.example", f"TXT {DOMAIN}._report._dmarc.{RUA_HOST}"],
        ),
        (
            "DKIM (every common selector at once)",
            [f"TXT <selector>._domainkey.{DOMAIN} x {len(COMMON_SELECTORS)}"],
        ),
        (
            "MX hosts (addresses and TLSA, then reverse names, then their addresses)",
            [
                f"MX {DOMAIN}",
                "A/AAAA + TLSA of each MX host",
                "PTR of each address",
                "A/AAAA of each PTR name",
            ],
        ),
    ]
    longest = max((chain for _, chain in parts), key=len)
    return longest, parts


def designed_spf_lookups() -> int:
    """The DNS-querying terms (RFC 7208 §4.6.4) in every record of the designed tree."""
    names = {"include", "a", "mx", "ptr", "exists", "redirect"}
    return sum(
        1
        for record in SPF.values()
        for term in record.split()[1:]
        if term.lstrip("+-~?").replace("=", ":").replace("/", ":").split(":")[0] in names
    )


# -- a proxy that also notes when each query arrived (for the per-round profile) ------------------
class TimedProxy(FaultProxy):
    def __init__(self, upstream: tuple[str, int], listen: tuple[str, int] | None = None) -> None:
        super().__init__(upstream, listen)
        self.arrivals: list[tuple[float, str, str]] = []

    def _fault_for(self, wire: bytes, transport: str) -> tuple[Any, str | None]:
        query, fault = super()._fault_for(wire, transport)
        if query is not None:
            question = query.question[0]
            with self._lock:
                self.arrivals.append(
                    (time.monotonic(), question.name.to_text().rstrip("."), str(question.rdtype.name))
                )
        return query, fault

    def reset_counts(self) -> None:
        super().reset_counts()
        with self._lock:
            self.arrivals.clear()


# -- the runs --------------------------------------------------------------------------------------
@dataclass
class Side:
    name: str
    run: Callable[[], Any]
    times: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    last_arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    last_start: float = 0.0


def clear_checkdmarc_cache() -> None:
    """checkdmarc keeps every answer process-wide for 30 minutes: forget them all."""
    import checkdmarc.utils as cd_utils

    cd_utils.DNS_CACHE.clear()
    cd_utils._NAMESERVER_FAILURES.clear()  # servers it would skip for a while after a failure


def timed(side: Side, proxy: TimedProxy, before: Callable[[], None] | None = None) -> Any:
    if before is not None:
        before()
    proxy.reset_counts()
    start = time.monotonic()
    result = side.run()
    side.times.append(time.monotonic() - start)
    side.last_start = start
    side.queries.append(proxy.count())
    with proxy._lock:
        side.last_arrivals = list(proxy.arrivals)
    return result


def check_ours(report: DomainReport) -> list[str]:
    """What is wrong with our check's findings on this zone (empty: sane)."""
    problems = []
    ids = [f.id for f in report.findings]
    if "dns.temperror" in ids or report.dns_unreachable:
        problems.append(f"dns.temperror in our findings: {[f.detail for f in report.findings]}")
    if report.spf is None or report.spf.dns_lookups != designed_spf_lookups():
        got = report.spf.dns_lookups if report.spf else None
        problems.append(f"SPF lookups {got}, designed {designed_spf_lookups()}")
    if report.spf is not None and report.spf.void_lookups:
        problems.append(f"{report.spf.void_lookups} void lookups, designed 0")
    found = sorted(k.selector for k in report.dkim.keys) if report.dkim else []
    if found != sorted(SELECTORS):
        problems.append(f"DKIM keys at {found}, published at {sorted(SELECTORS)}")
    if report.mx is None or sorted(h.host for h in report.mx.hosts) != sorted(MX_HOSTS):
        problems.append("MX hosts not as published")
    if report.dmarc is None or report.dmarc.record is None or report.dmarc.location != DOMAIN:
        problems.append("DMARC record not found at its own name")
    if "dmarc.rua_unauthorized" in ids:
        problems.append("the authorised external rua is reported unauthorised")
    if report.verdict != "pass":
        problems.append(f"verdict {report.verdict}, expected pass")
    return problems


def check_peer(result: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    spf, dmarc = result
    problems = []
    if not spf.get("valid") or spf.get("dns_lookups") != designed_spf_lookups():
        problems.append(
            f"checkdmarc SPF: valid={spf.get('valid')} lookups={spf.get('dns_lookups')} "
            f"error={spf.get('error')}"
        )
    if not dmarc.get("valid") or dmarc.get("location") != DOMAIN:
        problems.append(f"checkdmarc DMARC: valid={dmarc.get('valid')} error={dmarc.get('error')}")
    return problems


def print_ours(report: DomainReport) -> None:
    assert report.spf is not None and report.dkim is not None and report.mx is not None
    assert report.dmarc is not None
    print(f"  verdict: {report.verdict}; {report.summary}")
    print(
        f"  SPF: {report.spf.dns_lookups} DNS lookups (designed {designed_spf_lookups()}), "
        f"{report.spf.void_lookups} void; includes reached: {', '.join(report.spf.senders())}"
    )
    print(f"  DMARC: policy {report.dmarc.policy} from _dmarc.{report.dmarc.location}")
    print(
        "  DKIM: "
        + ", ".join(f"{k.selector} ({k.key_type} {k.key_bits} bits)" for k in report.dkim.keys)
        + f" of {len(report.dkim.selectors_tried)} selectors probed"
    )
    print("  MX: " + ", ".join(f"{h.preference} {h.host}" for h in report.mx.hosts))
    print("  findings: " + (", ".join(f"{f.id} ({f.severity.value})" for f in report.findings) or "none"))
    print(f"  queries our session sent: {report.queries}")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the finally that stops NSD and the proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each tool (default 7)")
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds the proxy adds to every query (default 0.05)"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.latency <= 0:
        parser.error("--runs must be at least 1 and --latency positive")
    try:
        find_nsd()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)

    import checkdmarc.dmarc
    import checkdmarc.spf

    with tempfile.TemporaryDirectory(prefix="dmarcbot-bench-") as workdir:
        nsd = NsdServer(Path(workdir) / "nsd")
        proxy: TimedProxy | None = None
        https = _https_server(Path(workdir) / "ca")
        try:
            try:
                https.__enter__()
            except RuntimeError as error:  # port 443 on a 127.x address needs root
                print(error, file=sys.stderr)
                return 2
            zones = build_zones(https.address)
            nsd.start(zones)
            # NSD's port is known once it started; checkdmarc's -n reaches port 53 only
            listen = (f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.53", 53)
            proxy = TimedProxy((nsd.host, nsd.port), listen=listen)
            try:
                proxy.start()
            except (RuntimeError, OSError) as error:  # port 53 needs root
                proxy = None
                print(f"cannot listen on {listen[0]}:53: {error}", file=sys.stderr)
                return 2
            proxy.latency = args.latency
            servers = (Nameserver(proxy.host, proxy.port),)
            peer_servers = checkdmarc_nameservers(servers)
            client = HttpsClient(ca_file=str(https.ca.ca_file))

            def ours() -> DomainReport:
                return asyncio.run(
                    check_domain(
                        DOMAIN, DnsSession(nameservers=servers, timeout=2.0, attempts=2), (), https=client
                    )
                )

            def peer() -> tuple[dict[str, Any], dict[str, Any]]:
                return (
                    checkdmarc.spf.check_spf(DOMAIN, nameservers=peer_servers),
                    checkdmarc.dmarc.check_dmarc(DOMAIN, nameservers=peer_servers),
                )

            in_process = _bench(
                args,
                proxy,
                len(zones),
                Side("dmarcbot check (full)", ours),
                Side("checkdmarc SPF+DMARC", peer),
            )
            command_lines = _bench_cli(args, proxy, ours, https)
            return max(in_process, command_lines)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the proxy, NSD and the HTTPS server", file=sys.stderr)
            return 130
        finally:
            if proxy is not None:
                proxy.stop()
            nsd.stop()
            https.__exit__(None, None, None)


def _https_server(workdir: Path) -> HttpsServer:
    """The MTA-STS policy host and the BIMI logo host, with certificates from a test CA."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = LocalCa(workdir)
    server = HttpsServer(ca)
    server.add(f"mta-sts.{DOMAIN}", ca.leaf([f"mta-sts.{DOMAIN}"]), Page(body=MTA_STS_POLICY.encode()))
    logo = Page(body=LOGO, headers={"Content-Type": "image/svg+xml"})
    server.add(f"bimi.{DOMAIN}", ca.leaf([f"bimi.{DOMAIN}"]), logo)
    return server


def _wall(argv: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    return time.monotonic() - start, done.stdout


def _bench_cli(
    args: argparse.Namespace, proxy: TimedProxy, ours: Callable[[], DomainReport], https: HttpsServer
) -> int:
    """Ours (in-process) against checkdmarc's command line net of its start-up, HTTPS up then down."""
    checkdmarc = str(Path(sys.executable).with_name("checkdmarc"))
    peer_argv = [checkdmarc, DOMAIN, "-n", proxy.host, "-f", "json"]
    startup = statistics.median(_wall([checkdmarc, "--version"])[0] for _ in range(args.runs))
    print(
        f"\nCommand lines: checkdmarc's CLI (`checkdmarc {DOMAIN} -n {proxy.host}`) against our "
        f"check; checkdmarc's start-up (`checkdmarc --version`, median of {args.runs}): {startup:.3f} s, "
        "subtracted from its runs. Ours runs in-process (no start-up)."
    )
    header = (
        f"{'phase':<11} {'tool':<22} {'median s':>9} {'net s':>7} {'queries/run':>12} {'checkdmarc/ours':>16}"
    )
    print(header)
    print("-" * len(header))
    goals = []
    for phase in ("HTTPS up", "HTTPS down"):
        if phase == "HTTPS down":
            https.__exit__(None, None, None)  # every fetch is now refused at once
        report = ours()
        peer_result = json.loads(_wall(peer_argv)[1] or "{}")
        problems = check_ours(report) + check_peer((peer_result.get("spf", {}), peer_result.get("dmarc", {})))
        ids = {f.id for f in report.findings}
        fetched = not ids & {"mta_sts.policy_unreachable", "bimi.logo_unreachable"}
        if fetched != (phase == "HTTPS up"):
            problems.append(f"{phase}: the HTTPS fetches {'failed' if not fetched else 'succeeded'}: {ids}")
        if problems:
            print(f"NOT SANE ({phase}), no timing reported:")
            for problem in problems:
                print(f"  - {problem}")
            return 1
        times: dict[str, list[float]] = {"ours": [], "peer": []}
        queries: dict[str, list[int]] = {"ours": [], "peer": []}
        for index in range(args.runs):
            order = ["ours", "peer"] if index % 2 == 0 else ["peer", "ours"]
            for side in order:
                proxy.reset_counts()
                if side == "ours":
                    start = time.monotonic()
                    ours()
                    times[side].append(time.monotonic() - start)
                else:
                    times[side].append(_wall(peer_argv)[0])
                queries[side].append(proxy.count())
        ours_net = statistics.median(times["ours"])
        peer_median = statistics.median(times["peer"])
        peer_net = peer_median - startup
        ratio = peer_net / ours_net
        for side, label, median, net in (
            ("ours", "dmarcbot check", ours_net, ours_net),
            ("peer", "checkdmarc CLI", peer_median, peer_net),
        ):
            counted = sorted(set(queries[side]))
            qtext = str(counted[0]) if len(counted) == 1 else f"{counted[0]}-{counted[-1]}"
            shown = f"{ratio:.1f}x" if side == "ours" else ""
            print(f"{phase:<11} {label:<22} {median:>9.3f} {net:>7.3f} {qtext:>12} {shown:>16}")
        goals.append(
            (
                ratio >= GOAL_VS_PEER,
                f"{phase}: ours >= {GOAL_VS_PEER:.0f}x faster than checkdmarc's CLI net of start-up: "
                f"{ratio:.1f}x",
            )
        )
    print()
    for ok, text in goals:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    load = os.getloadavg()
    print(f"Machine load (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    return 0 if all(ok for ok, _ in goals) else 1


def _bench(args: argparse.Namespace, proxy: TimedProxy, zone_count: int, ours: Side, peer: Side) -> int:
    latency = args.latency
    print(
        f"Zone: {DOMAIN} and {zone_count - 1} more zones on NSD; FaultProxy "
        f"{proxy.address} adds {latency * 1000:.0f} ms to every query."
    )
    print(
        "checkdmarc's process-wide DNS cache (checkdmarc.utils.DNS_CACHE) is cleared before each "
        "of its runs (untimed), so every run of it asks DNS afresh, as ours does."
    )

    # Warm-up (untimed in the table): imports, the PSL, dnspython's first sockets. Its results are
    # the ones checked for sanity.
    report = timed(Side("warm-up", ours.run), proxy)
    peer_result = timed(Side("warm-up", peer.run), proxy, clear_checkdmarc_cache)
    problems = check_ours(report) + check_peer(peer_result)
    print("\nOur findings on this zone:")
    print_ours(report)
    spf, dmarc = peer_result
    print(
        f"checkdmarc: SPF valid={spf.get('valid')} dns_lookups={spf.get('dns_lookups')} "
        f"void={spf.get('void_dns_lookups')}; DMARC valid={dmarc.get('valid')} "
        f"location={dmarc.get('location')} warnings={len(dmarc.get('warnings', []))}"
    )
    if problems:
        print("\nNOT SANE, no timing reported (a benchmark of a broken check is meaningless):")
        for problem in problems:
            print(f"  - {problem}")
        return 1

    for index in range(args.runs):  # alternate, and alternate who goes first
        pair = [(ours, None), (peer, clear_checkdmarc_cache)]
        for side, before in pair if index % 2 == 0 else reversed(pair):
            timed(side, proxy, before)

    chain, parts = critical_path()
    critical = len(chain) * latency
    print(
        "\nCritical path: the longest chain of lookups that each need the previous answer "
        "(every chain starts at time zero, all lookups of one step go out together):"
    )
    for label, part in parts:
        print(f"  {len(part)} step(s)  {label}: " + " -> ".join(part))
    print(f"  longest: {len(chain)} dependent lookups x {latency * 1000:.0f} ms = {critical:.3f} s")

    ours_median = statistics.median(ours.times)
    peer_median = statistics.median(peer.times)
    print(f"\n{args.runs} runs each, alternating, in one process (no start-up in any figure):")
    header = (
        f"{'tool':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'queries/run':>12} "
        f"{'checkdmarc/ours':>16} {'vs critical path':>17}"
    )
    print(header)
    print("-" * len(header))
    for side in (ours, peer):
        median = statistics.median(side.times)
        queries = sorted(set(side.queries))
        qtext = str(queries[0]) if len(queries) == 1 else f"{queries[0]}-{queries[-1]}"
        ratio = f"{peer_median / ours_median:.1f}x" if side is ours else ""
        print(
            f"{side.name:<24} {median:>9.3f} {min(side.times):>7.3f} {max(side.times):>7.3f} "
            f"{qtext:>12} {ratio:>16} {median / critical:>16.2f}x"
        )
    print(f"{'critical path':<24} {critical:>9.3f} {'':>7} {'':>7} {'':>12} {'':>16} {1.0:>16.2f}x")

    vs_peer = peer_median / ours_median
    vs_critical = ours_median / critical
    goals = [
        (
            vs_peer >= GOAL_VS_PEER,
            f"ours >= {GOAL_VS_PEER:.0f}x faster than checkdmarc SPF+DMARC: {vs_peer:.1f}x",
        ),
        (
            vs_critical <= GOAL_VS_CRITICAL,
            f"ours within {GOAL_VS_CRITICAL:.0f}x of the critical path: {vs_critical:.2f}x "
            f"({ours_median:.3f} s vs {critical:.3f} s)",
        ),
    ]
    print()
    for ok, text in goals:
        print(f"{'PASS' if ok else 'MISS'}  {text}")

    print(
        "\nOur last run: when each query reached the proxy, in ms after the check began (a query "
        f"that needs an earlier answer comes >= {latency * 1000:.0f} ms after that one):"
    )
    dkim = [at for at, name, _ in ours.last_arrivals if "._domainkey." in name]
    if dkim:
        print(
            f"  {(min(dkim) - ours.last_start) * 1000:6.1f}-{(max(dkim) - ours.last_start) * 1000:.1f}"
            f"  TXT <selector>._domainkey.{DOMAIN} x {len(dkim)}"
        )
    for at, name, rdtype in sorted(ours.last_arrivals):
        if "._domainkey." not in name:
            print(f"  {(at - ours.last_start) * 1000:6.1f}  {rdtype} {name}")
    spread = (peer.last_arrivals[-1][0] - peer.last_arrivals[0][0]) if peer.last_arrivals else 0.0
    print(
        f"checkdmarc's last run: {peer.queries[-1]} queries, one after another, the last "
        f"{spread * 1000:.0f} ms after the first (~{spread / max(1, peer.queries[-1] - 1) * 1000:.0f} "
        "ms apart)"
    )
    return 0 if all(ok for ok, _ in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
