"""Benchmark: one monitor cycle over 2,000 (or 10,000) watched domains sharing their providers' SPF includes.

    .venv/bin/python -m benchmarks.monitor_scale [--domains 2000] [--latency 0.02] [--runs 3]
        [--unselected] [--burst N] [--max-inflight N] [--compare N] [--profile FILE]

Needs NSD (`apt-get install -y nsd`); no network: everything is served on loopback.

What runs: NSD serves --domains watched domains (`bNNNN.brands.example`), each with a DMARC
record whose rua goes to an outside report vendor (so the RFC 9990 authorisation is asked per
domain), an SPF record with `mx` and one to three of five providers' includes (nested up to three
deep: the providers' records are the shared lookups), two MX hosts and a DKIM key at the watched
selector `google`. A FaultProxy in front of NSD adds --latency seconds to every query. The watches
are spread over 20 channels of 2 teams in a real SQLite file (WAL) in a temporary folder; alerts
go to the Slack stand-in (tests.slackstub) through the app's own WebClient.

What is timed (wall clock), --runs times each, median / min / max (and `cpu s`, the median CPU
time of this process, which a busy machine does not inflate as it does the wall clock):
- `baseline`: the first cycle (`bot.monitor.cycle.check_watches` + `deliver_pending`): every domain
  checked through one DnsSession, 2,000 snapshots written;
- `no change`: the same again: checks, snapshot updates, nothing to post;
- `include changed`: after a provider used by every domain changes its record: 2,000 alerts
  written to the outbox, then delivered as digests (one message per 47 alerts per channel, at most
  one post per second per channel).
Queries are counted by the proxy. "Alone" is what checking each domain on its own costs: a fresh
DnsSession per domain, measured on a sample of 100 domains. Peak memory is the process's peak
resident set (ru_maxrss of this process; the proxy runs in a process of its own, as the network
would).
Goal: a cycle under 60 s on this 2-core machine, far fewer queries per domain than alone.

Options for the fleet case:
- `--unselected`: the watches name no DKIM selector (the default of `/dmarc watch`): the baseline
  cycle probes the 59 common selectors of every domain, later cycles check the one found;
- `--probed`: the watches were probed when added (as `/dmarc watch` and `dmarcbot watch` do), so
  the baseline cycle checks the known selectors only;
- `--burst N`: the proxy drops every query that arrives while N are in flight, as dnsmasq drops
  what exceeds its `dns-forward-max` (150 by default);
- `--max-inflight N`: the session's bound on queries in flight (DMARCBOT_DNS_MAX_INFLIGHT);
- `--compare N`: first run the same cycles over N domains, and print how the time of a "no
  change" cycle grows from N to --domains (the goal: at most 5.5x for 2,000 -> 10,000);
- `--profile FILE`: cProfile the last "no change" cycle into FILE (read it with pstats).
Goals for 10,000 domains at 20 ms: a cycle under 60 s, peak memory under 200 MB, and zero domains
with DNS failures (the outages column), with and without selectors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import json
import multiprocessing
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings
from bot.monitor.alert_delivery import ChannelPacer, client_for_team_factory, deliver_pending
from bot.monitor.cycle import check_watches
from bot.store.database import iso, utcnow
from bot.store.stores import Stores, open_stores
from handlers.dns.resolver import DEFAULT_MAX_INFLIGHT, DnsSession, Nameserver
from handlers.domain.check import check_domain
from tests.dnstest import FaultProxy, NsdServer, find_nsd, make_zone
from tests.slackstub import SlackStandIn

ZONE = "brands.example"
VENDOR = "dmarcvendor.example"
CHANNELS = 20
TEAMS = ("T1", "T2")
SELECTOR = "google"
GOAL_SECONDS = 60.0
ALONE_SAMPLE = 100

# The providers' SPF records, name -> record: the lookups every domain shares.
PROVIDERS: dict[str, str] = {
    "_spf.mailhost.example": "v=spf1 include:_netblocks.mailhost.example "
    "include:_netblocks2.mailhost.example ~all",
    "_netblocks.mailhost.example": "v=spf1 ip4:198.51.100.0/24 include:_netblocks3.mailhost.example ~all",
    "_netblocks2.mailhost.example": "v=spf1 ip6:2001:db8:20::/48 ~all",
    "_netblocks3.mailhost.example": "v=spf1 ip4:192.0.2.128/25 ~all",
    "spf.crmsender.example": "v=spf1 ip4:198.18.0.0/24 include:spf.esprelay.example ~all",
    "spf.esprelay.example": "v=spf1 ip4:198.18.10.0/24 ~all",
    "_spf.helpdesk.example": "v=spf1 ip4:198.19.0.0/24 -all",
    "spf.newsletter.example": "v=spf1 ip4:203.0.113.0/25 -all",
    "spf.billing.example": "v=spf1 ip4:203.0.113.128/25 -all",
}
TOP_INCLUDES = [
    "_spf.mailhost.example",
    "spf.crmsender.example",
    "_spf.helpdesk.example",
    "spf.newsletter.example",
    "spf.billing.example",
]


def dkim_record() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def domain_name(n: int) -> str:
    return f"b{n:04d}.{ZONE}"


def build_zones(count: int, mailhost_ip: str = "198.51.100.0/24") -> dict[str, str]:
    """origin -> zone text: the watched domains' zone, each provider's, the report vendor's, and
    `example` above them (so the DMARC tree walk meets a real NXDOMAIN)."""
    key = dkim_record()
    records: list[tuple[str, str, str]] = []
    for n in range(count):
        label = f"b{n:04d}"
        includes = [TOP_INCLUDES[0]] + [TOP_INCLUDES[1 + (n + k) % 4] for k in range(n % 3)]
        spf = "v=spf1 mx " + " ".join(f"include:{i}" for i in includes) + " ~all"
        records += [
            (label, "TXT", spf),
            (
                f"_dmarc.{label}",
                "TXT",
                f"v=DMARC1; p=reject; rua=mailto:agg@reports.{VENDOR},mailto:dmarc@{domain_name(n)}",
            ),
            (label, "MX", f"10 mx1.{label}.{ZONE}."),
            (label, "MX", f"20 mx2.{label}.{ZONE}."),
            (f"mx1.{label}", "A", "192.0.2.25"),
            (f"mx1.{label}", "AAAA", "2001:db8::25"),
            (f"mx2.{label}", "A", "192.0.2.26"),
            (f"mx2.{label}", "AAAA", "2001:db8::26"),
            (f"{SELECTOR}._domainkey.{label}", "TXT", key),
        ]
    providers: dict[str, list[tuple[str, str, str]]] = {}
    for name, record in PROVIDERS.items():
        if name == "_netblocks.mailhost.example":
            record = record.replace("198.51.100.0/24", mailhost_ip)
        origin = ".".join(name.split(".")[-2:])
        providers.setdefault(origin, []).append((f"{name}.", "TXT", record))
    # One authorisation record per domain, not a wildcard: NSD's default response rate limiting
    # (200 a second) counts every wildcard or NODATA answer of a zone as one stream and would drop
    # some of 2,000 in a burst, which is the test server's limit, not the monitor's.
    vendor = [(f"{domain_name(n)}._report._dmarc.reports", "TXT", "v=DMARC1") for n in range(count)]
    zones = {
        ZONE: make_zone(ZONE, records),
        "example": make_zone("example", []),
        VENDOR: make_zone(VENDOR, vendor),
    }
    zones.update({origin: make_zone(origin, recs) for origin, recs in providers.items()})
    return zones


class ProxyProcess:
    """The FaultProxy in its own process: the network between us and DNS is not ours to pay for,
    and a proxy thread per query inside this process would compete with the monitor for the GIL."""

    def __init__(self, upstream: tuple[str, int], latency: float, burst: int | None = None) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(
            target=_serve_proxy, args=(upstream, latency, burst, child), daemon=True
        )
        self._process.start()
        self.host, self.port = self._conn.recv()

    def queries(self) -> int:
        """Queries the proxy has forwarded so far."""
        return self.counts()[0]

    def counts(self) -> tuple[int, int, int]:
        """(queries forwarded, queries dropped past the burst size, most in flight at once) so far."""
        self._conn.send("count")
        forwarded, dropped, peak = self._conn.recv()
        return int(forwarded), int(dropped), int(peak)

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(10)


def _serve_proxy(upstream: tuple[str, int], latency: float, burst: int | None, conn: object) -> None:
    proxy = FaultProxy(upstream).start()
    proxy.latency = latency
    proxy.burst_limit = burst
    # Hundreds of queries arrive at once; the kernel's default buffer (about 200 datagrams)
    # would drop some while the proxy's Python threads catch up, and a drop is a 2 s timeout.
    udp = proxy._udp
    if udp is not None:
        with contextlib.suppress(OSError):
            udp.setsockopt(
                socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", socket.SO_RCVBUF), 16 * 1024 * 1024
            )
    conn.send((proxy.host, proxy.port))  # type: ignore[attr-defined]
    while conn.recv() == "count":  # type: ignore[attr-defined]
        conn.send((len(proxy.queries), proxy.dropped, proxy.peak_in_flight))  # type: ignore[attr-defined]
    proxy.stop()


def add_watches(store: Stores, count: int, selectors: list[str]) -> None:
    for n in range(count):
        store.watches.add_watch(TEAMS[n % 2], f"C{n % CHANNELS:02d}", domain_name(n), selectors, "bench")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# seconds, DNS queries sent, alerts written, messages posted, outages, queries dropped, retries,
# CPU seconds of this process (the monitor's own work, whatever else the machine is doing)
Row = tuple[float, int, int, int, int, int, int, float]


def one_cycle(
    store: Stores,
    settings: Settings,
    server: Nameserver,
    proxy: ProxyProcess,
    max_inflight: int,
    profile: str | None = None,
) -> Row:
    """(seconds, DNS queries sent, alerts written, messages posted, outages, queries the proxy
    dropped, congestion retries) of one full cycle. An outage (a query unanswered twice in 2 s)
    is what the monitor must tolerate, so it is counted, not fatal; a Python error in a check is."""
    before, dropped_before, _ = proxy.counts()
    profiler = cProfile.Profile() if profile else None
    started, cpu_started = time.monotonic(), time.process_time()
    session = DnsSession(nameservers=(server,), timeout=2.0, attempts=2, max_inflight=max_inflight)
    if profiler:
        profiler.enable()
    cycle = check_watches(store, session)
    if profiler and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    delivery = deliver_pending(store.outbox, client_for_team_factory(settings), ChannelPacer())
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    if cycle.errors:
        raise SystemExit(f"a broken cycle is no benchmark: {cycle.errors[:3]}")
    queries, dropped, _ = proxy.counts()
    return (
        elapsed,
        queries - before,
        cycle.alerts_written,
        delivery.messages_posted,
        cycle.outages,
        dropped - dropped_before,
        session.congestion_retries,
        cpu,
    )


def queries_alone(server: Nameserver, sample: int) -> float:
    """Queries per domain when each is checked on its own (a fresh session each)."""

    async def run() -> int:
        total = 0
        for n in range(sample):
            session = DnsSession(nameservers=(server,), timeout=2.0, attempts=2)
            await check_domain(domain_name(n), session, (SELECTOR,))
            total += session.queries_sent
        return total

    return asyncio.run(run()) / sample


GOAL_MEMORY_MB = 200.0
GOAL_GROWTH = 5.5  # the time of 5x the domains, at most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument(
        "--latency", type=float, default=0.02, help="seconds the proxy adds to every query (default 0.02)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each cycle kind (default 3)")
    parser.add_argument("--unselected", action="store_true", help="watches name no DKIM selector")
    parser.add_argument(
        "--probed", action="store_true", help="watches probed when added: no probe in the baseline cycle"
    )
    parser.add_argument("--burst", type=int, default=None, help="the proxy drops past N queries in flight")
    parser.add_argument("--max-inflight", type=int, default=DEFAULT_MAX_INFLIGHT)
    parser.add_argument("--compare", type=int, default=None, help="also run N domains first, for growth")
    parser.add_argument("--profile", default=None, help="cProfile the last no-change cycle into FILE")
    args = parser.parse_args()
    if args.domains < ALONE_SAMPLE or args.runs < 1 or args.latency < 0 or args.max_inflight < 1:
        parser.error(
            f"--domains at least {ALONE_SAMPLE}, --runs and --max-inflight at least 1, --latency >= 0"
        )
    if args.compare is not None and not ALONE_SAMPLE <= args.compare < args.domains:
        parser.error("--compare N needs N below --domains (and at least 100)")
    try:
        find_nsd()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    rss_start = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="dmarcbot-monitor-bench-") as workdir:
        nsd = NsdServer(Path(workdir) / "nsd")
        nsd.start(build_zones(args.domains))
        proxy = ProxyProcess((nsd.host, nsd.port), args.latency, args.burst)  # forked before any thread
        slack = SlackStandIn().start()
        try:
            server = Nameserver(proxy.host, proxy.port)
            return bench(args, nsd, proxy, slack, server, Path(workdir), rss_start)
        finally:
            proxy.stop()
            slack.stop()
            nsd.stop()


def run_size(
    args: argparse.Namespace,
    count: int,
    nsd: NsdServer,
    proxy: ProxyProcess,
    slack: SlackStandIn,
    server: Nameserver,
    workdir: Path,
    profile: str | None,
) -> dict[str, list[Row]]:
    """--runs of each cycle kind over `count` watched domains (the zones serve --domains)."""
    kinds: dict[str, list[Row]] = {"baseline": [], "no change": [], "include changed": []}
    flips = ["198.51.100.0/24", "198.51.101.0/24"]
    selectors = [] if args.unselected else [SELECTOR]
    for run in range(args.runs):
        nsd.set_zones(build_zones(args.domains, flips[0]))
        db = workdir / f"run{count}-{run}.db"
        store = open_stores(str(db))
        add_watches(store, count, selectors)
        if args.probed:  # as if added by /dmarc watch, whose first check probes
            found = "[]" if selectors else json.dumps([SELECTOR])
            store.database.connection.execute(
                "UPDATE watches SET found_selectors = ?, selectors_probed_at = ?", [found, iso(utcnow())]
            )
        settings = Settings(slack_bot_token="xoxb-bench", slack_api_url=slack.api_url, db_path=str(db))
        last = run == args.runs - 1
        kinds["baseline"].append(one_cycle(store, settings, server, proxy, args.max_inflight))
        kinds["no change"].append(
            one_cycle(store, settings, server, proxy, args.max_inflight, profile if last else None)
        )
        nsd.set_zones(build_zones(args.domains, flips[1]))  # a provider changes its netblock
        kinds["include changed"].append(one_cycle(store, settings, server, proxy, args.max_inflight))
        store.close()
    return kinds


def print_table(count: int, kinds: dict[str, list[Row]]) -> None:
    header = (
        f"{'cycle':<17}{'median s':>10}{'min s':>8}{'max s':>8}{'queries':>9}"
        f"{'q/domain':>10}{'alerts':>8}{'posts':>7}{'outages':>9}{'dropped':>9}{'retries':>9}{'cpu s':>8}"
    )
    print(f"\n{count} watched domains")
    print(header)
    print("-" * len(header))
    for kind, rows in kinds.items():
        times = [r[0] for r in rows]
        queries = rows[-1][1]
        print(
            f"{kind:<17}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}"
            f"{queries:>9}{queries / count:>10.2f}{rows[-1][2]:>8}{rows[-1][3]:>7}"
            f"{sum(r[4] for r in rows):>9}{sum(r[5] for r in rows):>9}{sum(r[6] for r in rows):>9}"
            f"{statistics.median(r[7] for r in rows):>8.2f}"
        )


def bench(
    args: argparse.Namespace,
    nsd: NsdServer,
    proxy: ProxyProcess,
    slack: SlackStandIn,
    server: Nameserver,
    workdir: Path,
    rss_start: float,
) -> int:
    sizes = [args.compare, args.domains] if args.compare else [args.domains]
    results = {
        count: run_size(
            args, count, nsd, proxy, slack, server, workdir, args.profile if count == args.domains else None
        )
        for count in sizes
    }
    alone = queries_alone(server, ALONE_SAMPLE)
    rss_peak = peak_rss_mb()
    _, _, peak_inflight = proxy.counts()

    print(
        f"Watched domains ({CHANNELS} channels, {len(TEAMS)} teams, "
        + ("no selector named" if args.unselected else f"selector {SELECTOR}")
        + f"), {len(PROVIDERS)} shared provider SPF records; FaultProxy adds "
        f"{args.latency * 1000:.0f} ms to every query"
        + (f" and drops past {args.burst} in flight" if args.burst else "")
        + f"; at most {args.max_inflight} queries in flight; {args.runs} runs of each cycle."
    )
    for count, kinds in results.items():
        print_table(count, kinds)
    kinds = results[args.domains]
    shared = kinds["no change"][-1][1] / args.domains
    print(
        f"\nQueries per domain checked alone (fresh session each, {ALONE_SAMPLE} sampled, selector "
        f"{SELECTOR}): {alone:.2f}; in one cycle's shared session: {shared:.2f}."
    )
    print(f"Most queries in flight at the proxy: {peak_inflight}.")
    print(f"Peak resident memory: {rss_peak:.0f} MB (at start {rss_start:.0f} MB).")
    worst = max(r[0] for rows in kinds.values() for r in rows)
    steady = max(r[0] for r in kinds["no change"])
    outages = sum(r[4] for rows_by_kind in results.values() for rows in rows_by_kind.values() for r in rows)
    goals = [
        (f"every cycle under {GOAL_SECONDS:.0f} s (slowest {worst:.1f} s)", worst < GOAL_SECONDS),
        (f"peak memory under {GOAL_MEMORY_MB:.0f} MB ({rss_peak:.0f} MB)", rss_peak < GOAL_MEMORY_MB),
        (f"no domain with DNS failures ({outages} outages)", outages == 0),
    ]
    if args.unselected:  # the baseline cycle is the probe, once a week: the steady cycle is the goal
        goals[0] = (
            f"a steady cycle under {GOAL_SECONDS:.0f} s (slowest {steady:.1f} s)",
            steady < GOAL_SECONDS,
        )
    if args.compare:
        small = statistics.median(r[0] for r in results[args.compare]["no change"])
        large = statistics.median(r[0] for r in kinds["no change"])
        growth = large / small
        goals.append(
            (
                f"{args.domains} domains in at most {GOAL_GROWTH}x the time of {args.compare} "
                f"({large:.1f} s / {small:.1f} s = {growth:.2f}x)",
                growth <= GOAL_GROWTH,
            )
        )
    for text, met in goals:
        print(f"Goal: {text}: {'met' if met else 'NOT met'}")
    return 0 if all(met for _, met in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
