"""Benchmark: aggregate report parsing, records per second and peak memory, ours against parsedmarc.

    .venv/bin/pip install parsedmarc      # for this benchmark only: NOT a dmarcbot dependency
    .venv/bin/python -m benchmarks.ingest [--records 1000000] [--parsedmarc-records 100000] [--runs 3]

Inputs: the largest aggregate reports in tests/data (parsedmarc's large-example, OpenDMARC's
NetEase reports) and generated reports of --records and --parsedmarc-records records, written to a
temporary directory as a stream (the generator never holds the report in memory).

Every measurement runs in its own subprocess, so the peak RSS (VmHWM, else `ru_maxrss`; whole process:
interpreter, imports, parse) of one does not leak into another. Timings are the median of --runs
runs in that subprocess, after one untimed warm-up run on the small samples (file cache,
parsedmarc's GeoIP database load). Then one more, untimed, run under tracemalloc gives "traced MiB":
the peak of the Python memory the parse itself allocated (input bytes included where the parser
needs them whole).

What is compared:
- `ours stream`: `iter_records()` over the file (the ingest path: constant memory).
- `ours parse_report`: `parse_report()` on the file's bytes, all Records kept (memory grows with
  the records kept, not with the parse).
- `parsedmarc`: `parse_aggregate_report_xml()` on the file's bytes, offline (no DNS, no downloads:
  offline=True, always_use_local_files=True, and a loopback nameserver as a belt and braces). It
  still looks each IP up in its bundled GeoIP database: that is part of its parse and is counted.
  A guard in the subprocess refuses any socket to a non-loopback address, and the count of refused
  attempts is printed: it must be 0.

parsedmarc builds the whole document as dicts (xmltodict) and parses it twice, so on a million
records it needs many GB: by default it runs on --parsedmarc-records records and its rate is the one
measured there (the table says so); --parsedmarc-records 0 skips it on generated data.

The whole ingest path, hostile inputs (`ours ingest`: `bot.reports.ingest.ingest_bytes` into a
fresh SQLite file, as `dmarcbot ingest` and the mailbox poller run it):
- a zip of --zip-members members of --zip-records records each (2,400,000 by default). Its XML is
  far over the 200 MB max_xml_bytes cap, so with the default caps the file is refused when the cap
  is reached: that row measures the path up to the refusal, and says so. `ours ingest uncapped`
  lifts that one cap to measure every record parsed, staged and stored. parsedmarc's
  `parse_report_file` reads the same zip (it takes the zip's first member only);
  --parsedmarc-zip 0 skips it, since it holds the member's whole document as dicts;
- a zip bomb: one member of 1 GB of blank elements inside <feedback>, refused at the 200 MB
  max_xml_bytes cap (parsedmarc is not run on it: it inflates the member whole).

Failure reports (`ours failures`): a mailbox of --failure-reports generated RFC 6591 failure
reports, one `.eml` file each (a quarter carry a DKIM signature, the rest none; 50 source IPs), each
ingested by `ingest_bytes` into one fresh SQLite file as `dmarcbot ingest FILE...` runs them: parsed,
explained by the `why` verdict against NSD on loopback (needs `nsd`: DMARC, SPF and the DKIM key of
the signed ones looked up for every report, as when it is read), stored redacted. It runs on a
tenth of the mailbox, then on the whole, so the two peak RSS figures show whether memory stays flat
as the mailbox grows. parsedmarc is not run on it: it does not explain failure reports.
`--report` runs one case instead: --report-records records (1,000,000) over the last
--report-days days (30), one report per day ingested through `ingest_bytes` into a fresh SQLite
file, from a pool of --report-sources distinct IPs (10,000; every record its own stored row),
then `dmarcbot report example.com` timed as a user runs it: its own process, the real command
(the summary with senders named, reverse names and the SPF chain asked of NSD on loopback),
median of --runs. The summary alone (`summarise_named`, in this process) is timed beside it.
Needs NSD.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO / "tests" / "data"
_NETEASE = TESTDATA / "dmarc-opendmarc" / "aggregate_reports"
SAMPLES = [
    TESTDATA / "dmarc-reports-parsedmarc" / "aggregate" / "!large-example.com!1711897200!1711983600.xml",
    _NETEASE / "good.com!example.com!1337270400!1337356799.xml",
    _NETEASE / "yeah.net!example.com!1337270400!1337356799.20120518.xml",
]
PIP_HINT = ".venv/bin/pip install parsedmarc   # benchmark only, not a project dependency"


# --- generated reports ---------------------------------------------------------------------------

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>bench.example</org_name>
    <email>noreply-dmarc@bench.example</email>
    <report_id>bench-{n}</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><sp>none</sp><pct>100</pct>
  </policy_published>
"""

_RECORD = """  <record>
    <row>
      <source_ip>{ip}</source_ip>
      <count>{count}</count>
      <policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated>
    </row>
    <identifiers><envelope_from>{envelope}</envelope_from><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>{dkim_domain}</domain><selector>s{selector}</selector><result>{dkim}</result></dkim>
      <spf><domain>{envelope}</domain><scope>mfrom</scope><result>{spf}</result></spf>
    </auth_results>
  </record>
"""


def _records(n: int, period: int = 0) -> Iterator[str]:
    first_v4 = int(ipaddress.IPv4Address("11.0.0.0"))
    for k in range(n):
        i = k % period if period else k
        # Distinct sources, as in a real report (one row per source and result combination); one in
        # ten is IPv6.
        if i % 10 == 9:
            ip = f"2001:db8::{i >> 16:x}:{i & 0xFFFF:x}"
        else:
            ip = str(ipaddress.IPv4Address(first_v4 + i * 7))
        passing = i % 4 != 0
        yield _RECORD.format(
            ip=ip,
            count=1 + i % 97,
            disposition="none" if passing else "quarantine",
            dkim="pass" if passing else "fail",
            spf="pass" if i % 3 else "fail",
            envelope=f"bounce{i % 50}.example.com",
            dkim_domain="example.com" if passing else "esp.example.net",
            selector=i % 5,
        )


def generate(path: Path, n: int, report_id: str | None = None, period: int = 0) -> Path:
    """Write a report of n records to path, streaming (memory does not depend on n); with a
    period, the records repeat every `period` (so the report compresses as far as real ones)."""
    with path.open("w", encoding="ascii") as out:
        out.write(_HEAD.format(n=report_id or n))
        batch: list[str] = []
        for record in _records(n, period):
            batch.append(record)
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write("</feedback>\n")
    return path


def generate_zip(path: Path, members: int, records: int, tmp: Path) -> Path:
    """A zip of `members` reports of `records` records each, each member written from a stream."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in range(members):
            # 40 sources repeating: each member deflates to about 1.4 MB (the window holds a period),
            # so the zip stays under the 25 MB input cap, as a real report of this size would.
            xml = generate(tmp / f"member{member}.xml", records, report_id=f"zip-{member}", period=40)
            archive.write(xml, f"bench.example!example.com!{member}.xml")
            xml.unlink()
    return path


def generate_zip_bomb(path: Path, inflated: int = 1 << 30) -> Path:
    """A zip holding `inflated` bytes of well-formed XML (about 1000:1): inside <feedback>, blank
    elements of 64 KiB each, so no cap but the decompressed size (max_xml_bytes) refuses it."""
    element = b"<x>" + b" " * (64 * 1024) + b"</x>"
    batch = element * 16
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("bomb.xml", "w") as out:
        out.write(b"<feedback>")
        for _ in range(inflated // len(batch)):
            out.write(batch)
    return path


# --- generated failure reports ------------------------------------------------------------------

FAILURE_SOURCES = 50  # distinct source IPs in the generated mailbox


def failure_zones(public_key: str) -> dict[str, str]:
    """The zones the failure reports' verdicts ask: example.com's DMARC, SPF and DKIM key."""
    from tests.messages.helpers import key_record, zones

    return zones(
        {
            "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com")],
            "example.com": [("TXT", "v=spf1 ip4:185.70.40.10 -all")],
            "s1._domainkey.example.com": [("TXT", key_record(public_key))],
        }
    )


def _failure_report(original: bytes, source_ip: str, arrival: str) -> bytes:
    """An RFC 6591 failure report as a receiver mails it, carrying `original`."""
    return (
        b"From: dmarc-noreply@receiver.example\r\nTo: ruf@example.com\r\n"
        b"Subject: DMARC failure report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n'
        b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nA message failed DMARC.\r\n"
        b"--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: auth-failure\r\nUser-Agent: bench/1.0\r\nVersion: 1\r\n"
        + f"Original-Mail-From: <alice@example.com>\r\nArrival-Date: {arrival}\r\n"
        f"Source-IP: {source_ip}\r\nReported-Domain: example.com\r\nAuth-Failure: dmarc\r\n".encode()
        + b"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
        + original
        + b"\r\n--B--\r\n"
    )


def generate_failure_mailbox(folder: Path, count: int, private_key: bytes) -> Path:
    """`count` failure reports, one .eml file each: every fourth carries a message signed by
    example.com (one signature made once; the reports differ by source IP and arrival time)."""
    from email.utils import format_datetime

    from tests.messages.helpers import message, sign

    folder.mkdir()
    plain = message()
    signed = sign(plain, "example.com", "s1", private_key)
    start = time.time() - 2 * 86400
    for n in range(count):
        ip = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("203.0.113.0")) + n % FAILURE_SOURCES))
        arrival = format_datetime(_utc(start + n))
        original = signed if n % 4 == 0 else plain.replace(b"Quarterly numbers", f"Numbers {n}".encode())
        (folder / f"{n:06d}.eml").write_bytes(_failure_report(original, ip, arrival))
    return folder


def _utc(seconds: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


# --- the worker: one parser, one file, in a fresh process ----------------------------------------

_refused_connections = 0
_refusals: list[str] = []  # the ingest path's refusals (the cap that applied)
_NAMESERVER = [""]  # host:port of the DNS server the failure reports' verdicts ask (the worker's)


def _guard_network() -> None:
    """Refuse every socket to a non-loopback address, so a parser cannot reach the network."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def allowed(address: Any) -> bool:
        if not isinstance(address, tuple):
            return True  # AF_UNIX
        try:
            return ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            return False  # a host name: it would need a DNS lookup first

    def refuse(address: Any) -> None:
        global _refused_connections
        _refused_connections += 1
        raise OSError(f"benchmark network guard: no connection to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            refuse(address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        if not allowed(args[-1]):
            refuse(args[-1])
        return real_sendto(self, data, *args)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]


def _maxrss_mib() -> float:
    # VmHWM belongs to this process's address space, which exec replaces; ru_maxrss on Linux keeps
    # the parent's high-water mark across fork and exec, so it would report the driver's peak.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _parser(kind: str) -> Callable[[Path], int]:
    """Return a function that parses one file and returns the number of records it read."""
    if kind == "ours-stream":
        from handlers.reports.aggregate import ReportLimits, iter_records

        limits = ReportLimits(max_records=10**8)  # the benchmark's own input: no cap in the way

        def run(path: Path) -> int:
            with path.open("rb") as stream:
                return sum(1 for _ in iter_records(stream, limits))

        return run
    if kind == "ours-parse_report":
        from handlers.reports.aggregate import ReportLimits, parse_report

        limits = ReportLimits(max_records=10**8, max_xml_bytes=10**12)

        def run(path: Path) -> int:
            return len(parse_report(path.read_bytes(), limits).records)

        return run
    if kind in ("ours-ingest", "ours-ingest-uncapped"):
        from bot.reports.ingest import ingest_bytes, one_team
        from bot.store.stores import open_stores
        from handlers.reports.aggregate import DEFAULT_LIMITS, ReportLimits

        # uncapped: the decompressed-size cap lifted (and the input one, for a larger --zip-records)
        uncapped = ReportLimits(max_xml_bytes=10**12, max_input_bytes=10**10)
        limits = DEFAULT_LIMITS if kind == "ours-ingest" else uncapped

        def run(path: Path) -> int:
            with tempfile.TemporaryDirectory(prefix="dmarcbot-bench-db-") as folder:
                stores = open_stores(str(Path(folder) / "bench.db"))
                try:
                    data, owners = path.read_bytes(), one_team("T1")
                    outcome = ingest_bytes(stores.reports, data, path.name, owners, "bench", limits)
                finally:
                    stores.close()
            if not outcome.ok:
                _refusals.append(outcome.refused_by_cap or outcome.error or "refused")
                return 0
            return sum(report.records for report in outcome.reports)

        return run
    if kind == "ours-failures":
        from bot.reports.failures import FailureReading
        from bot.reports.ingest import ingest_bytes, one_team
        from bot.store.stores import open_stores
        from handlers.dns.resolver import DnsSession, parse_nameserver

        servers = (parse_nameserver(_NAMESERVER[0]),)
        reading = FailureReading(dns=lambda: DnsSession(nameservers=servers, timeout=2.0, attempts=2))

        def run(path: Path) -> int:
            stored = 0
            with tempfile.TemporaryDirectory(prefix="dmarcbot-bench-db-") as folder:
                stores = open_stores(str(Path(folder) / "bench.db"))
                try:
                    owners = one_team("T1")
                    for mail in sorted(path.iterdir()):
                        outcome = ingest_bytes(
                            stores.reports, mail.read_bytes(), mail.name, owners, "bench", reading=reading
                        )
                        if not outcome.ok:
                            _refusals.append(outcome.error or "refused")
                        stored += len(outcome.failures)
                finally:
                    stores.close()
            return stored

        return run
    if kind == "parsedmarc-file":
        import parsedmarc

        def run(path: Path) -> int:
            report = parsedmarc.parse_report_file(
                str(path),
                offline=True,
                always_use_local_files=True,
                nameservers=["127.0.0.1"],
                dns_timeout=0.01,
            )
            return len(report["report"]["records"])

        return run
    if kind == "parsedmarc":
        import parsedmarc

        def run(path: Path) -> int:
            report = parsedmarc.parse_aggregate_report_xml(
                path.read_bytes(),
                offline=True,
                always_use_local_files=True,
                nameservers=["127.0.0.1"],
                timeout=0.01,
            )
            return len(report["records"])

        return run
    raise SystemExit(f"unknown parser {kind}")


def worker(kind: str, path: Path, runs: int, warmup: bool, traced: bool = True) -> None:
    """Measure one parser on one file; print one JSON line."""
    _guard_network()
    run = _parser(kind)
    if warmup:
        run(path)
    baseline = _maxrss_mib()
    times = []
    records = 0
    for _ in range(runs):
        started = time.perf_counter()
        records = run(path)
        times.append(time.perf_counter() - started)
    peak = _maxrss_mib()
    traced_peak = float("nan")
    if traced:
        # One more run under tracemalloc (which slows it, hence not timed): the peak of what the
        # parse itself allocated, free of the interpreter, the imports and allocator slack.
        tracemalloc.start()
        run(path)
        traced_peak = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "records": records,
                "median_s": statistics.median(times),
                "times": times,
                "peak_mib": peak,
                "baseline_mib": baseline,
                "traced_peak_mib": traced_peak,
                "refused_connections": _refused_connections,
                "refused_by": sorted(set(_refusals)),
            }
        )
    )


# --- the driver ----------------------------------------------------------------------------------


def _measure(kind: str, path: Path, runs: int, warmup: bool, nameserver: str = "") -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.ingest", "--worker", kind, "--file", str(path)]
    if nameserver:
        command += ["--nameserver", nameserver]
    if kind in _WHOLE_PATH:
        # Minutes a run on the big inputs: one run, no tracemalloc run (it would take many more).
        command += ["--runs", "1", "--untraced"]
    else:
        command += ["--runs", str(runs)]
    if warmup:
        command.append("--warmup")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_WHOLE_PATH = ("ours-ingest", "ours-ingest-uncapped", "parsedmarc-file", "ours-failures")


_FAILURE_KEY = [b""]  # the private key of the generated DKIM signatures (the driver's)


def _start_failure_dns(folder: Path, stack: contextlib.ExitStack) -> str:
    """NSD on loopback serving the failure reports' zones, stopped when `stack` closes; its address."""
    from tests.dnstest import NsdServer
    from tests.keys import rsa_key

    private, public = rsa_key(2048)
    _FAILURE_KEY[0] = private
    nsd = NsdServer(folder / "nsd")
    stack.callback(nsd.stop)
    nsd.start(failure_zones(public))
    return nsd.address


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder (a mailbox)."""
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def _have_parsedmarc() -> bool:
    # find_spec, not import: an import here would raise this process's peak RSS, which a child
    # process inherits (Linux keeps ru_maxrss across fork and exec) and would then report.
    return importlib.util.find_spec("parsedmarc") is not None


# --- the report case: `dmarcbot report` over a month of stored records -----------------------------

_DAY_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>{org}</org_name>
    <email>noreply-dmarc@{org}</email>
    <report_id>month-{day}</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p>
  </policy_published>
"""
REPORT_SPF = "v=spf1 include:_spf.google.com include:servers.mcsv.net -all"
REPORT_ZONES = {
    "example.com": [
        ("@", "TXT", REPORT_SPF),
        ("_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.com"),
    ],
    # the providers' SPF ranges, so that naming senders by SPF include has something to find
    "google.com": [("_spf", "TXT", "v=spf1 ip4:11.0.0.0/14 -all")],
    "mcsv.net": [("servers", "TXT", "v=spf1 ip4:11.4.0.0/16 -all")],
}


def _month_day_records(day: int, n: int, pool: int) -> Iterator[str]:
    """One day's records: sources from a pool shared by every day (the same senders come back),
    a quarter failing DMARC, a few DKIM domains and selectors, dispositions and envelopes."""
    first_v4 = int(ipaddress.IPv4Address("11.0.0.0"))
    for k in range(n):
        i = (day * 7919 + k) % pool
        ip = (
            f"2001:db8::{i >> 16:x}:{i & 0xFFFF:x}"
            if i % 10 == 9
            else str(ipaddress.IPv4Address(first_v4 + i * 7))
        )
        passing = i % 4 != 0
        yield _RECORD.format(
            ip=ip,
            count=1 + (i + day) % 97,
            disposition="none" if passing else ("quarantine" if i % 3 else "reject"),
            dkim="pass" if passing else "fail",
            spf="pass" if i % 3 else "fail",
            envelope=f"bounce{i % 50}.example.com" if i % 5 else "mcsv.net",
            dkim_domain="example.com" if passing else ("mcsv.net" if i % 8 == 0 else "esp.example.net"),
            selector=i % 5,
        )


def store_month(db: Path, records: int, days: int, pool: int, tmp: Path) -> int:
    """Ingest `records` records over the last `days` UTC days (one report a day, as a reporter
    sends them) through the ingest path into `db`; returns the rows stored."""
    from datetime import UTC, datetime, timedelta

    from bot.reports.ingest import ingest_bytes, one_team
    from bot.store.stores import open_stores
    from handlers.reports.aggregate import ReportLimits

    limits = ReportLimits(max_records=10**8, max_xml_bytes=10**12, max_input_bytes=10**10)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stores = open_stores(str(db))
    try:
        for day in range(days):
            start = today - timedelta(days=days - 1 - day)
            n = records // days + (1 if day < records % days else 0)
            path = tmp / f"day{day}.xml"
            with path.open("w", encoding="ascii") as out:
                begin = int(start.timestamp())
                out.write(_DAY_HEAD.format(org="bench.example", day=day, begin=begin, end=begin + 86399))
                batch: list[str] = []
                for record in _month_day_records(day, n, pool):
                    batch.append(record)
                    if len(batch) == 10_000:
                        out.write("".join(batch))
                        batch.clear()
                out.write("".join(batch) + "</feedback>\n")
            outcome = ingest_bytes(
                stores.reports, path.read_bytes(), path.name, one_team("TBENCH"), "bench", limits
            )
            path.unlink()
            if not outcome.ok:
                raise SystemExit(f"ingest of day {day} failed: {outcome.error}")
        row = stores.database.connection.execute("SELECT COUNT(*) FROM agg_rows").fetchone()
        return int(row[0])
    finally:
        stores.close()


def report_case(records: int, days: int, pool: int, runs: int) -> None:
    """Store a month of records, then time `dmarcbot report example.com` against it."""
    from tests.dnstest import NsdServer, find_nsd, make_zone

    try:
        find_nsd()
    except RuntimeError as error:
        raise SystemExit(f"the report case needs NSD: {error}") from None
    with tempfile.TemporaryDirectory(prefix="dmarcbot-bench-report-") as folder:
        tmp = Path(folder)
        db = tmp / "month.db"
        started = time.perf_counter()
        rows = store_month(db, records, days, pool, tmp)
        stored_s = time.perf_counter() - started
        print(
            f"stored {records:,} records over {days} days: {rows:,} rows, {db.stat().st_size / 1e6:,.0f} MB, "
            f"in {stored_s:.0f} s"
        )
        (tmp / "nsd").mkdir()
        nsd = NsdServer(tmp / "nsd").start({o: make_zone(o, zone) for o, zone in REPORT_ZONES.items()})
        try:
            env = {
                **os.environ,
                "DMARCBOT_DB": str(db),
                "DMARCBOT_NAMESERVERS": nsd.address,
                "SLACK_TEAM_ID": "TBENCH",
                "PYTHONPATH": str(REPO),
            }
            command = [sys.executable, "-m", "bot", "report", "example.com"]
            timings: list[float] = []
            for _ in range(runs + 1):  # the first, untimed: the file cache
                started = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                timings.append(time.perf_counter() - started)
                if done.returncode != 0:
                    raise SystemExit(f"dmarcbot report failed ({done.returncode}): {done.stderr[-500:]}")
            each = ", ".join(f"{t:.2f}" for t in timings[1:])
            print(f"dmarcbot report example.com: median {statistics.median(timings[1:]):.2f} s ({each} s)")
            in_process, summary = _time_summary(db, nsd.address, runs)
            named = sum(1 for s in summary.senders if s.name)
            print(
                f"  the summary alone (summarise_named, in this process): {in_process:.2f} s median; "
                f"{summary.messages:,} messages, {len(summary.sources):,} sources, {len(summary.senders)} "
                f"senders ({named} named: {', '.join(s.name for s in summary.senders if s.name)[:200]})"
            )
        finally:
            nsd.stop()
    load = os.getloadavg()
    loads = " ".join(f"{value:.1f}" for value in load)
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {loads} (1, 5, 15 min)")


def _time_summary(db: Path, nameserver: str, runs: int) -> tuple[float, Any]:
    """The median time of the summary `dmarcbot report` prints, with senders named, in this process."""
    from bot.reports.summary import summarise_named
    from bot.store.stores import open_stores
    from handlers.dns.resolver import DnsSession, parse_nameserver

    stores = open_stores(str(db))
    try:
        session = DnsSession(nameservers=(parse_nameserver(nameserver),))
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            summary = summarise_named(stores.reports, "TBENCH", "example.com", 30, session)
            timings.append(time.perf_counter() - started)
        return statistics.median(timings), summary
    finally:
        stores.close()


def main() -> None:
    """Run every measurement and print the table."""
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    args.add_argument("--records", type=int, default=1_000_000, help="records in the big generated report")
    args.add_argument(
        "--parsedmarc-records", type=int, default=100_000, help="generated records for parsedmarc (0: skip)"
    )
    args.add_argument("--runs", type=int, default=3)
    args.add_argument("--zip-members", type=int, default=5, help="reports in the big zip (0: no zip case)")
    args.add_argument("--zip-records", type=int, default=480_000, help="records in each report of the zip")
    args.add_argument(
        "--parsedmarc-zip", type=int, default=1, help="1: run parsedmarc on the zip too; 0: skip"
    )
    args.add_argument("--no-bomb", action="store_true", help="skip the zip bomb case")
    args.add_argument("--only-hostile", action="store_true", help="only the zip and zip bomb cases")
    args.add_argument(
        "--failure-reports",
        type=int,
        default=10_000,
        help="failure reports in the mailbox case, also run on a tenth of them (0: skip; needs nsd)",
    )
    args.add_argument("--only-failures", action="store_true", help="only the failure report mailbox")
    args.add_argument("--nameserver", help=argparse.SUPPRESS)
    args.add_argument(
        "--report",
        action="store_true",
        help="only the report case: `dmarcbot report` over a month of records",
    )
    args.add_argument("--report-records", type=int, default=1_000_000, help="records stored for --report")
    args.add_argument("--report-days", type=int, default=30, help="days they are spread over")
    args.add_argument("--report-sources", type=int, default=10_000, help="distinct source IPs among them")
    args.add_argument("--worker", help=argparse.SUPPRESS)
    args.add_argument("--untraced", action="store_true", help=argparse.SUPPRESS)
    args.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    opts = args.parse_args()
    if opts.worker:
        _NAMESERVER[0] = opts.nameserver or ""
        worker(opts.worker, opts.file, opts.runs, opts.warmup, traced=not opts.untraced)
        return
    if opts.report:
        report_case(opts.report_records, opts.report_days, opts.report_sources, opts.runs)
        return

    have_parsedmarc = _have_parsedmarc()
    if not have_parsedmarc:
        print(f"parsedmarc is not installed: only our parser is measured. To compare: {PIP_HINT}\n")
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="dmarcbot-bench-") as tmp:
        jobs: list[tuple[str, Path, list[str], bool]] = []
        both = ["ours-stream", "ours-parse_report"] + (["parsedmarc"] if have_parsedmarc else [])
        if not (opts.only_hostile or opts.only_failures):
            for sample in SAMPLES:
                if sample.exists():
                    jobs.append((sample.name[:40], sample, both, True))
            if opts.parsedmarc_records:
                mid = generate(Path(tmp) / "mid.xml", opts.parsedmarc_records)
                jobs.append((f"generated {opts.parsedmarc_records:,}", mid, both, False))
            big = generate(Path(tmp) / "big.xml", opts.records)
            jobs.append((f"generated {opts.records:,}", big, ["ours-stream"], False))
        if opts.zip_members and not opts.only_failures:
            total = opts.zip_members * opts.zip_records
            archive = generate_zip(Path(tmp) / "big.zip", opts.zip_members, opts.zip_records, Path(tmp))
            kinds = ["ours-ingest", "ours-ingest-uncapped"]
            kinds += ["parsedmarc-file"] if have_parsedmarc and opts.parsedmarc_zip else []
            jobs.append((f"zip {opts.zip_members} x {opts.zip_records:,} = {total:,}", archive, kinds, False))
        if not (opts.no_bomb or opts.only_failures):
            bomb = generate_zip_bomb(Path(tmp) / "bomb.zip")
            jobs.append(("zip bomb, 1 GB inflated", bomb, ["ours-ingest"], False))
        nameserver = ""
        if opts.failure_reports and not opts.only_hostile:
            nameserver = _start_failure_dns(Path(tmp), stack)
            private_key = _FAILURE_KEY[0]
            for count in dict.fromkeys((max(1, opts.failure_reports // 10), opts.failure_reports)):
                mailbox = generate_failure_mailbox(Path(tmp) / f"failures-{count}", count, private_key)
                jobs.append((f"failure reports, mailbox of {count:,}", mailbox, ["ours-failures"], False))

        header = (
            f"{'input':42} {'MB':>7} {'parser':18} {'records':>9} {'median s':>9} {'records/s':>10} "
            f"{'peak RSS MiB':>12} {'traced MiB':>10}"
        )
        print(header)
        print("-" * len(header))
        rates: dict[tuple[str, str], float] = {}
        for label, path, kinds, warmup in jobs:
            size = _size(path) / 1e6
            for kind in kinds:
                result = _measure(
                    kind, path, opts.runs, warmup, nameserver if kind == "ours-failures" else ""
                )
                if "error" in result:
                    print(f"{label:42} {size:7.1f} {kind:18} failed: {result['error'][:80]}")
                    continue
                rate = result["records"] / result["median_s"]
                rates[(label, kind)] = rate
                print(
                    f"{label:42} {size:7.1f} {kind:18} {result['records']:9,} {result['median_s']:9.3f} "
                    f"{rate:10,.0f} {result['peak_mib']:12.1f} {result['traced_peak_mib']:10.1f}"
                    + (
                        f"  !! {result['refused_connections']} network attempts refused"
                        if result["refused_connections"]
                        else ""
                    )
                    + (
                        f"  refused by the {', '.join(result['refused_by'])} cap: measured up to the refusal"
                        if result.get("refused_by")
                        else ""
                    )
                )
            sys.stdout.flush()

    print()
    print("ratio = ours-stream records/s over parsedmarc records/s on the same input:")
    for label, _path, _kinds, _warmup in jobs:
        ours, theirs = rates.get((label, "ours-stream")), rates.get((label, "parsedmarc"))
        if ours and theirs:
            print(f"  {label:42} {ours / theirs:5.1f}x")
    if have_parsedmarc and opts.parsedmarc_records:
        theirs = rates.get((f"generated {opts.parsedmarc_records:,}", "parsedmarc"))
        ours = rates.get((f"generated {opts.records:,}", "ours-stream"))
        if ours and theirs:
            print(
                f"  generated {opts.records:,}: parsedmarc not run (memory); its rate at "
                f"{opts.parsedmarc_records:,} records extrapolated: ours {ours / theirs:.1f}x, "
                f"parsedmarc would take about {opts.records / theirs:,.0f} s"
            )
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs; runs per measurement: {opts.runs}")


if __name__ == "__main__":
    main()
