"""BIND 9 on a free loopback port, taking RFC 2136 dynamic updates signed with a TSIG key.

Each zone is a primary with `update-policy { grant KEY zonesub ANY; }`: the key may change any name
in the zone, nothing else may change anything. The zone files and journals live in the work folder.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from tests.dnstest.nsd import _kill_group, free_port

START_TIMEOUT = 10.0
KEY_NAME = "dmarcbot-test"


def find_named() -> str:
    """The path of `named`, or a clear error saying how to install it."""
    found = shutil.which("named") or "/usr/sbin/named"
    if not os.access(found, os.X_OK):
        raise RuntimeError("the rfc2136 tests need BIND 9: install it with `apt-get install -y bind9`")
    return found


class BindServer:
    """named serving `zones` (origin -> zone-file text) on 127.0.0.1:`port`, updatable with the TSIG key."""

    host = "127.0.0.1"
    key_name = KEY_NAME
    algorithm = "hmac-sha256"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.port = 0
        self.zones: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, zones: Mapping[str, str]) -> BindServer:
        self.zones = {origin.rstrip(".").lower(): text for origin, text in zones.items()}
        self.port = free_port(self.host)
        blocks = []
        for origin, text in self.zones.items():
            path = self.workdir / f"{origin}.zone"
            path.write_text(text)
            blocks.append(
                f'zone "{origin}" {{ type primary; file "{path}"; '
                f"update-policy {{ grant {self.key_name} zonesub ANY; }}; }};"
            )
        config = (
            f'options {{ directory "{self.workdir}"; listen-on port {self.port} {{ {self.host}; }}; '
            f'listen-on-v6 {{ none; }}; pid-file "{self.workdir / "named.pid"}"; recursion no; '
            f'dnssec-validation no; session-keyfile "{self.workdir / "session.key"}"; }};\n'
            f'key "{self.key_name}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};\n'
            "controls { };\n" + "\n".join(blocks) + "\n"
        )
        (self.workdir / "named.conf").write_text(config)
        command = [find_named(), "-g", "-c", str(self.workdir / "named.conf")]
        if os.geteuid() == 0:
            command += ["-u", "root"]  # named drops to the `bind` user, who cannot write this folder
        with open(self.workdir / "named.log", "wb") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"named exited: {self.log_text()}")
            if all(self._serves(origin) for origin in self.zones):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"named did not answer within {START_TIMEOUT} s: {self.log_text()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc)

    def log_text(self) -> str:
        path = self.workdir / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _serves(self, origin: str) -> bool:
        query = dns.message.make_query(origin, "SOA")
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.flags & dns.flags.AA)

    def __enter__(self) -> BindServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
