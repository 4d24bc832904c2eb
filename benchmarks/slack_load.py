"""Benchmark: ack time and time-to-answer of concurrent `/dmarc check` commands at the real endpoint.

    .venv/bin/python -m benchmarks.slack_load [--levels 1,20,100,200] [--latency 0.05] [--distinct 10]

Needs NSD (`apt-get install -y nsd`); no network: everything is served on loopback.

What runs: `dmarcbot serve` itself, in its own process (HTTP mode, its SQLite file in a temporary
folder), so the app does not share an interpreter with the clients measuring it. Its DNS is NSD
behind a FaultProxy that adds --latency seconds to every query (0.05 by default, a realistic
resolver; 2.0 is the issue's slow DNS); its Web API and every response_url is the Slack stand-in
(tests/slackstub) in this process. Each domain has DMARC, SPF with an include, MX and a DKIM key;
the check probes every common selector, as in Slack.

Each level sends that many signed `/dmarc check` commands at once (threads released by a barrier),
each from its own channel, spread over --distinct domains of its own (new names per level, so no
level is answered from another's shared result; commands for the same domain share one check, as
in an incident where ten people check the same domain), plus one `/dmarc help` sent in the middle
of the burst. Measured from the moment each request is sent:
- ack: until the HTTP answer arrives (Slack shows the user an error after 3 s);
- answer: until the stand-in receives the report's chat.postMessage for that channel.
Percentiles are nearest-rank; p99 of 20 commands is their maximum.

Bounded: at most 500 commands a level, each level given --timeout seconds to be answered (what is
not answered by then is counted as missing), the app stopped on every way out.

Exit status: 0 when every command was acked within 3 s and answered; 1 otherwise; 2 without NSD;
130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from tests.dnstest import FaultProxy, NsdServer, find_nsd, make_zone
from tests.keys import rsa_public_key
from tests.slackstub import SIGNING_SECRET, SlackClientSim, SlackStandIn
from tests.slackstub.requests import free_port

MAX_COMMANDS = 500
SLACK_ACK_LIMIT = 3.0
PROVIDER = "mailer-provider.example"


def build_zones(levels: list[int], distinct: int) -> tuple[dict[str, str], dict[int, list[str]]]:
    """The zones (origin -> text) and each level's domains."""
    key = rsa_public_key(2048)
    zones = {PROVIDER: make_zone(PROVIDER, [("_spf", "TXT", "v=spf1 ip4:198.51.100.0/24 ~all")])}
    domains: dict[int, list[str]] = {}
    for level in levels:
        domains[level] = []
        for k in range(min(distinct, level)):
            domain = f"shop{k}-l{level}.example"
            domains[level].append(domain)
            zones[domain] = make_zone(
                domain,
                [
                    ("@", "TXT", f"v=spf1 include:_spf.{PROVIDER} -all"),
                    ("_dmarc", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"),
                    ("@", "MX", f"10 mx.{domain}."),
                    ("mx", "A", "192.0.2.25"),
                    ("google._domainkey", "TXT", f"v=DKIM1; k=rsa; p={key}"),
                ],
            )
    return zones, domains


@dataclass
class Level:
    commands: int
    acks: list[float] = field(default_factory=list)  # seconds, for the commands answered 200
    answers: list[float] = field(default_factory=list)
    failed_acks: int = 0
    busy: int = 0
    help_ack: float | None = None
    wall: float = 0.0


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def run_level(url: str, slack: SlackStandIn, level: int, domains: list[str], timeout: float) -> Level:
    result = Level(level)
    sent: dict[str, float] = {}  # channel -> time.time() when its command was sent
    lock = threading.Lock()
    barrier = threading.Barrier(level + 2)  # the commands, the help, this thread

    def command(i: int) -> None:
        sim = SlackClientSim(url, stand_in=slack, timeout=30.0)
        channel = f"CL{level}N{i:04d}"
        barrier.wait()
        started = time.time()
        with lock:
            sent[channel] = started
        try:
            status, body = sim.slash_command(f"check {domains[i % len(domains)]}", channel_id=channel)
        except OSError:
            status, body = 0, ""
        elapsed = time.time() - started
        with lock:
            if status == 200:
                result.acks.append(elapsed)
                result.busy += "busy" in body
            else:
                result.failed_acks += 1

    def help_in_the_middle() -> None:
        sim = SlackClientSim(url, stand_in=slack, timeout=30.0)
        barrier.wait()
        time.sleep(min(0.2, 0.002 * level))  # while the burst is being taken
        started = time.time()
        status, body = sim.slash_command("help")
        if status == 200 and "/dmarc check" in body:
            result.help_ack = time.time() - started

    threads = [threading.Thread(target=command, args=(i,), daemon=True) for i in range(level)]
    helper = threading.Thread(target=help_in_the_middle, daemon=True)
    began = time.time()
    for thread in [*threads, helper]:
        thread.start()
    barrier.wait()  # this thread is the last party: every command starts now
    for thread in [*threads, helper]:
        thread.join(timeout)
    deadline = began + timeout
    prefix = f"CL{level}N"
    while time.time() < deadline:
        answered = {c.params.get("channel") for c in slack.calls("chat.postMessage") if c.ok}
        if sum(1 for channel in sent if channel in answered) >= level - result.busy - result.failed_acks:
            break
        time.sleep(0.05)
    for call in slack.calls("chat.postMessage"):
        channel = str(call.params.get("channel") or "")
        if call.ok and channel.startswith(prefix) and channel in sent:
            result.answers.append(call.at - sent[channel])
    result.wall = time.time() - began
    return result


def wait_until_serving(url: str, slack: SlackStandIn, app: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    sim = SlackClientSim(url, stand_in=slack, timeout=10.0)
    while True:
        if app.poll() is not None:
            raise RuntimeError(f"dmarcbot serve exited ({app.returncode}):\n{log.read_text()[-2000:]}")
        try:
            status, _ = sim.slash_command("help")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"dmarcbot serve did not answer within 60 s:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def print_table(latency: float, results: list[Level]) -> None:
    print(f"\nDNS latency {latency * 1000:.0f} ms per query; times in ms from each command's send.")
    header = (
        f"{'commands':>8} {'acked':>6} {'ack p50':>8} {'ack p99':>8} {'ack max':>8} {'busy':>5} "
        f"{'answered':>8} {'ans p50':>8} {'ans p99':>8} {'ans max':>8} {'help ack':>8} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.commands:>8} {len(r.acks):>6} {_ms(percentile(r.acks, 50)):>8} "
            f"{_ms(percentile(r.acks, 99)):>8} "
            f"{_ms(max(r.acks, default=None)):>8} {r.busy:>5} {len(r.answers):>8} "
            f"{_ms(percentile(r.answers, 50)):>8} {_ms(percentile(r.answers, 99)):>8} "
            f"{_ms(max(r.answers, default=None)):>8} {_ms(r.help_ack):>8} {r.wall:>7.1f}"
        )


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the finally that stops the app, NSD and the proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--levels", default="1,20,100,200", help="concurrent commands per level")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every DNS query")
    parser.add_argument("--distinct", type=int, default=10, help="distinct domains per level (default 10)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each level may take")
    args = parser.parse_args()
    try:
        levels = [int(n) for n in args.levels.split(",")]
    except ValueError:
        parser.error("--levels is a comma-separated list of whole numbers, e.g. 1,20,100,200")
    if not levels or any(n < 1 or n > MAX_COMMANDS for n in levels):
        parser.error(f"each level is 1 to {MAX_COMMANDS} commands")
    if args.latency < 0 or args.distinct < 1 or args.timeout <= 0:
        parser.error("--latency is 0 or more, --distinct at least 1, --timeout positive")
    try:
        find_nsd()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)

    zones, domains = build_zones(levels, args.distinct)
    with tempfile.TemporaryDirectory(prefix="dmarcbot-bench-") as workdir:
        nsd = NsdServer(Path(workdir) / "nsd")
        proxy: FaultProxy | None = None
        slack = SlackStandIn()
        app: subprocess.Popen[bytes] | None = None
        log = Path(workdir) / "serve.log"
        try:
            nsd.start(zones)
            proxy = FaultProxy((nsd.host, nsd.port))
            proxy.start()
            proxy.latency = args.latency
            slack.start()
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DMARCBOT_"))}
            env.update(
                SLACK_BOT_TOKEN="xoxb-benchmark",
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=slack.api_url,
                DMARCBOT_DB=str(Path(workdir) / "dmarcbot.db"),
                DMARCBOT_NAMESERVERS=proxy.address,
                DMARCBOT_DNS_TIMEOUT=str(max(2.0, args.latency * 2.5)),
                PORT=str(port),
                LOG_LEVEL="WARNING",
            )
            with log.open("wb") as out:
                app = subprocess.Popen(
                    [sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
                )
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, slack, app, log)
            print(
                f"dmarcbot serve (pid {app.pid}) on {url}; NSD {nsd.address} behind FaultProxy "
                f"{proxy.address} (+{args.latency * 1000:.0f} ms a query); Slack stand-in {slack.api_url}"
            )
            load = os.getloadavg()
            print(f"load average before: {load[0]:.2f} {load[1]:.2f} on {os.cpu_count()} cores")
            results = []
            for level in levels:
                queries_before = len(proxy.queries)
                result = run_level(url, slack, level, domains[level], args.timeout)
                results.append(result)
                print(
                    f"  {level} commands over {len(domains[level])} domains: {len(result.acks)} acked, "
                    f"{len(result.answers)} answered in {result.wall:.1f} s; "
                    f"{len(proxy.queries) - queries_before} DNS queries"
                )
            print_table(args.latency, results)
            print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
            ok = all(
                len(r.acks) == r.commands
                and max(r.acks) < SLACK_ACK_LIMIT
                and len(r.answers) == r.commands - r.busy
                for r in results
            )
            print("PASS: every command acked within 3 s and answered" if ok else "MISS: see the table")
            return 0 if ok else 1
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the app, the proxy and NSD", file=sys.stderr)
            return 130
        finally:
            if app is not None and app.poll() is None:
                app.terminate()
                try:
                    app.wait(10)
                except subprocess.TimeoutExpired:
                    app.kill()
                    app.wait()
            slack.stop()
            if proxy is not None:
                proxy.stop()
            nsd.stop()


if __name__ == "__main__":
    sys.exit(main())
