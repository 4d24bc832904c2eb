"""A real authoritative DNS server (NSD) on a free loopback port, serving zones given as text."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.dnstest.zones import make_zone

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
_ZONE_ERRORS = re.compile(r"zone (\S+) file \S+ read with \d+ errors")
_BIND_ERRORS = re.compile(r"can't bind|Address already in use", re.IGNORECASE)

_live: set[NsdServer] = set()
_live_lock = threading.Lock()


def find_nsd() -> str:
    """The path of the `nsd` binary, or a clear error saying how to install it."""
    found = shutil.which("nsd") or next(
        (p for p in ("/usr/sbin/nsd", "/usr/local/sbin/nsd") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(
            "the tests need NSD, the authoritative DNS server, and `nsd` was not found: "
            "install it with `apt-get install -y nsd` (Debian/Ubuntu), `brew install nsd` (macOS) "
            "or your system's `nsd` package"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def _origin(name: str) -> str:
    return name.strip().rstrip(".").lower()


# The real DNS answers NXDOMAIN for an address nobody gave a reverse name; NSD refuses names outside
# its zones, which a check rightly reads as an outage. So the reverse trees are served, empty, unless
# a test serves them (or a zone above them) itself; a test's own reverse zone, deeper, still wins.
_REVERSE_TREES = ("in-addr.arpa", "ip6.arpa")


def _with_reverse_zones(zones: Mapping[str, str]) -> dict[str, str]:
    if "" in zones or "arpa" in zones:
        return dict(zones)
    return {**{tree: make_zone(tree, []) for tree in _REVERSE_TREES}, **zones}


class NsdServer:
    """NSD serving `zones` (origin -> zone-file text) on 127.0.0.1:`port`, UDP and TCP.

    Zone data changes (`set_zones`, `set_zone`) restart NSD on the same port (about 0.1 s); the new
    data is served when the call returns. A zone file NSD cannot read makes the call raise with
    NSD's log, rather than leaving the zone answering SERVFAIL.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.zones: dict[str, str] = {}
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._generation = 0

    # -- addresses -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("NsdServer is not started")
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, zones: Mapping[str, str] | None = None) -> NsdServer:
        """Start serving `zones` (origin -> zone text); a first start picks a free port."""
        if self.running:
            raise RuntimeError("NsdServer already started; use set_zones() to change its data")
        self.zones = {_origin(origin): text for origin, text in (zones or {}).items()}
        self._launch()
        return self

    def set_zones(self, zones: Mapping[str, str]) -> None:
        """Replace every zone with `zones`; served when this returns."""
        self._restart({_origin(origin): text for origin, text in zones.items()})

    def set_zone(self, origin: str, text: str) -> None:
        """Add or replace one zone, keeping the others; served when this returns."""
        self._restart({**self.zones, _origin(origin): text})

    def remove_zone(self, origin: str) -> None:
        """Stop serving one zone (NSD then answers REFUSED for its names)."""
        self._restart({k: v for k, v in self.zones.items() if k != _origin(origin)})

    def stop(self) -> None:
        """Stop NSD and every process it forked. Safe to call twice."""
        proc, self._proc = self._proc, None
        with _live_lock:
            _live.discard(self)
        if proc is None:
            return
        _kill_group(proc)

    def __enter__(self) -> NsdServer:
        if not self.running:
            self.start(self.zones)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.address if self._port is not None else "not started"
        return f"<NsdServer {where} zones={sorted(self.zones)}>"

    def log_text(self) -> str:
        """What NSD logged (log file and its own stdout/stderr) since its last (re)start."""
        parts = []
        for name in ("nsd.log", "nsd.out"):
            path = self._gen_dir() / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts).strip()

    # -- internals -----------------------------------------------------------------------------
    def _restart(self, zones: dict[str, str]) -> None:
        """Serve `zones` instead; when NSD rejects them, go back to the previous zones and raise."""
        previous, was_running = self.zones, self.running
        self.stop()
        self.zones = zones
        try:
            self._launch()
        except RuntimeError:
            self.zones = previous
            if was_running:
                self._launch()
            raise

    def _gen_dir(self) -> Path:
        return self.workdir / f"run{self._generation}"

    def _launch(self) -> None:
        keep_port = self._port is not None
        for attempt in range(20):
            if self._port is None:
                self._port = free_port(self.host)
            self._generation += 1
            self._write_config()
            error = self._spawn_and_wait()
            if error is None:
                for old in self.workdir.glob("run*"):
                    if old != self._gen_dir():  # keep only the running generation's files
                        shutil.rmtree(old, ignore_errors=True)
                return
            if not _BIND_ERRORS.search(error):
                raise RuntimeError(error)
            if keep_port:  # the old port is briefly unavailable: wait, then try it again
                time.sleep(0.05 * (attempt + 1))
            else:
                self._port = None
        raise RuntimeError(f"NSD could not bind 127.0.0.1:{self._port}: {self.log_text()}")

    def _write_config(self) -> None:
        run = self._gen_dir()
        if run.exists():
            shutil.rmtree(run)
        (run / "zones").mkdir(parents=True)
        zone_blocks = []
        for index, (origin, text) in enumerate(sorted(_with_reverse_zones(self.zones).items())):
            zonefile = run / "zones" / f"{index}-{origin or 'root'}.zone"
            zonefile.write_text(text)
            zone_blocks.append(f'zone:\n  name: "{origin or "."}"\n  zonefile: "{zonefile}"\n')
        config = (
            "server:\n"
            f"  ip-address: {self.host}@{self.port}\n"
            f"  port: {self.port}\n"
            '  username: ""\n'
            '  chroot: ""\n'
            '  database: ""\n'
            f'  zonesdir: "{run}"\n'
            f'  pidfile: "{run / "nsd.pid"}"\n'
            f'  xfrdfile: "{run / "xfrd.state"}"\n'
            f'  xfrdir: "{run}"\n'
            f'  zonelistfile: "{run / "zone.list"}"\n'
            f'  logfile: "{run / "nsd.log"}"\n'
            "  server-count: 1\n"
            "  do-ip4: yes\n"
            "  do-ip6: no\n"
            "  verbosity: 1\n"
            # No response rate limiting: its default (200 answers/s per kind of answer) drops
            # bursts of NXDOMAIN/NODATA answers, and the tests burst. Both 0 turns RRL off.
            "  rrl-ratelimit: 0\n"
            "  rrl-whitelist-ratelimit: 0\n"
            "remote-control:\n"
            "  control-enable: no\n" + "".join(zone_blocks)
        )
        (run / "nsd.conf").write_text(config)

    def _spawn_and_wait(self) -> str | None:
        """Start NSD and wait until every zone answers its SOA; None, or the reason it did not."""
        run = self._gen_dir()
        with open(run / "nsd.out", "wb") as out:
            proc = subprocess.Popen(
                [find_nsd(), "-d", "-c", str(run / "nsd.conf")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # NSD forks xfrd and servers: stop() kills the group
            )
        self._proc = proc
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        pending: list[str | None] = [*sorted(self.zones)] or [None]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.stop()
                return f"NSD exited with status {proc.returncode}:\n{self.log_text()}"
            log = self.log_text()
            broken = _ZONE_ERRORS.findall(log)
            if broken:
                self.stop()
                return f"NSD could not load zone(s) {', '.join(broken)}:\n{log}"
            pending = [origin for origin in pending if not self._serves(origin)]
            if not pending:
                return None
            time.sleep(0.01)
        self.stop()
        return (
            f"NSD did not answer on {self.address} within {START_TIMEOUT} s "
            f"(waiting for {pending}):\n{self.log_text()}"
        )

    def _serves(self, origin: str | None) -> bool:
        """True when NSD answers authoritatively for `origin` (or answers at all, for None)."""
        query = dns.message.make_query(origin or ".", dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.host, timeout=0.1, port=self.port)
        except (dns.exception.DNSException, OSError):
            return False
        if origin is None:
            return True
        return response.rcode() == dns.rcode.NOERROR and bool(response.flags & dns.flags.AA)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM NSD's process group (ours: start_new_session), then SIGKILL what remains."""
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)
        while time.monotonic() < deadline:  # wait for the forked children too
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            if _group_only_zombies(pgid):
                return
            time.sleep(0.005)


def _group_only_zombies(pgid: int) -> bool:
    """True when every process left in group `pgid` is a zombie waiting to be reaped."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[3])
        if group == pgid and state != "Z":
            return False
    return True


@atexit.register
def _stop_all() -> None:
    """Last resort: no NSD outlives the test process, whatever happened to the fixtures."""
    with _live_lock:
        servers = list(_live)
    for server in servers:
        server.stop()
