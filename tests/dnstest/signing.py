"""Zones signed by BIND's own tools (dnssec-keygen, dnssec-signzone), as a DNS provider signs them.

The code under test verifies with dnspython; signing with another implementation keeps the tests
from agreeing with the code only because both use the same library. `dnssec-signzone -g` writes
the DS set a registrar would publish, and `dnssec-dsfromkey` makes a DS for any other key.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SignedZone:
    """A signed zone's text, the DS set for its key-signing key, and its key files by role."""

    text: str
    ds: str  # zone-file lines: "<zone>. IN DS ..."
    ksk: Path
    zsk: Path


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found is None:
        raise RuntimeError(
            f"the DNSSEC tests need `{name}`, from BIND's tools: install it with "
            "`apt-get install -y bind9-utils` (Debian/Ubuntu) or your system's BIND utilities"
        )
    return found


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def new_key(workdir: Path, origin: str, *, ksk: bool) -> Path:
    """A fresh ECDSA P-256 key (RFC 6605) for `origin` in `workdir`: its .key file."""
    workdir.mkdir(parents=True, exist_ok=True)
    flags = ["-f", "KSK"] if ksk else []
    base = _run(
        _tool("dnssec-keygen"), "-q", "-K", str(workdir), "-a", "ECDSAP256SHA256", *flags, origin
    ).strip()
    return workdir / f"{base}.key"


def ds_of(key_file: Path) -> str:
    """The DS line (SHA-256) a registrar would publish for `key_file`."""
    return _run(_tool("dnssec-dsfromkey"), "-2", str(key_file)).strip()


def sign_with_bind(workdir: Path, origin: str, text: str) -> SignedZone:
    """`text` (a zone from make_zone) signed with a new KSK and ZSK by dnssec-signzone; as most
    providers sign, the DNSKEY set is signed by the KSK alone (`-x`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ksk, zsk = new_key(workdir, origin, ksk=True), new_key(workdir, origin, ksk=False)
    unsigned = workdir / f"db.{origin}"
    unsigned.write_text(text)
    signed = workdir / f"db.{origin}.signed"
    _run(
        _tool("dnssec-signzone"),
        *("-S", "-x", "-g", "-K", str(workdir), "-d", str(workdir), "-o", origin, "-f", str(signed)),
        str(unsigned),
    )
    return SignedZone(signed.read_text(), (workdir / f"dsset-{origin}.").read_text().strip(), ksk, zsk)
