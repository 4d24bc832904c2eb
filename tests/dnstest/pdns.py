"""PowerDNS Authoritative on loopback: the SQLite backend, DNS on a free port, its HTTP API on another.

The DNS provider the apply flow writes to through dns-lexicon; what it serves is read back with
real DNS queries. Zones are loaded from zone-file text (tests.dnstest.zones) with `pdnsutil
load-zone`. Every cache is off, so an API write is served by the next query.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.dnstest.nsd import _kill_group, free_port

START_TIMEOUT = 10.0
SCHEMAS = (
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
)


def find_pdns() -> tuple[str, str, str]:
    """The paths of pdns_server, pdnsutil and the SQLite schema, or a clear error saying what to install."""
    server = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
    util = shutil.which("pdnsutil") or "/usr/bin/pdnsutil"
    schema = next((s for s in SCHEMAS if os.path.isfile(s)), None)
    if not (os.access(server, os.X_OK) and os.access(util, os.X_OK) and schema):
        raise RuntimeError(
            "the apply tests need PowerDNS Authoritative with its SQLite backend: "
            "install them with `apt-get install -y pdns-server pdns-backend-sqlite3`"
        )
    return server, util, schema


class PdnsServer:
    """pdns_server with the gsqlite3 backend: DNS on 127.0.0.1:`port`, the API at `api_url`."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_key = secrets.token_hex(12)
        self.port = 0
        self.api_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def start(self) -> PdnsServer:
        server, _, schema = find_pdns()
        database = self.workdir / "pdns.sqlite3"
        if not database.exists():
            with sqlite3.connect(database) as db:
                db.executescript(Path(schema).read_text())
        for _ in range(10):
            self.port, self.api_port = free_port(self.host), free_port(self.host)
            if self.port != self.api_port:
                break
        config = "\n".join(
            [
                "launch=gsqlite3",
                f"gsqlite3-database={database}",
                f"local-address={self.host}",
                f"local-port={self.port}",
                "api=yes",
                f"api-key={self.api_key}",
                "webserver=yes",
                f"webserver-address={self.host}",
                f"webserver-port={self.api_port}",
                "webserver-allow-from=127.0.0.0/8",
                f"socket-dir={self.workdir}",
                "guardian=no",
                "daemon=no",
                "disable-syslog=yes",
                "loglevel=4",
                # No cache of any kind: a write through the API is served by the next question.
                "cache-ttl=0",
                "negquery-cache-ttl=0",
                "query-cache-ttl=0",
                "zone-cache-refresh-interval=0",
                "consistent-backends=yes",
                "receiver-threads=1",
                "distributor-threads=1",
                "",
            ]
        )
        (self.workdir / "pdns.conf").write_text(config)
        with open(self.workdir / "pdns.log", "wb") as out:
            self._proc = subprocess.Popen(
                [server, f"--config-dir={self.workdir}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"pdns_server exited: {self.log_text()}")
            if self._answers() and self._api_answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"pdns_server did not answer within {START_TIMEOUT} s: {self.log_text()}")

    def load_zone(self, origin: str, text: str) -> None:
        """Serve `origin` from zone-file text (replacing it when it exists)."""
        _, util, _ = find_pdns()
        zonefile = self.workdir / f"{origin}.zone"
        zonefile.write_text(text)
        done = subprocess.run(
            [util, f"--config-dir={self.workdir}", "load-zone", origin, str(zonefile)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pdnsutil load-zone {origin} failed: {done.stderr or done.stdout}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc)

    def log_text(self) -> str:
        path = self.workdir / "pdns.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _answers(self) -> bool:
        query = dns.message.make_query(".", "SOA")
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() in (dns.rcode.NOERROR, dns.rcode.REFUSED, dns.rcode.SERVFAIL)

    def _api_answers(self) -> bool:
        connection = http.client.HTTPConnection(self.host, self.api_port, timeout=0.5)
        try:
            connection.request("GET", "/api/v1/servers/localhost", headers={"X-API-Key": self.api_key})
            response = connection.getresponse()
            return response.status == 200 and bool(json.loads(response.read()))
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def __enter__(self) -> PdnsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
