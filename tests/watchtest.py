"""Helpers for the watch and monitor tests: zones of a watched domain and its mail provider, and a
harness that runs monitor cycles against the real DNS server, a real database file and the Slack
stand-in, exactly as `dmarcbot monitor --once` does (check, then deliver)."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings
from bot.monitor.alert_delivery import ChannelPacer, DeliveryReport, client_for_team_factory, deliver_pending
from bot.monitor.cycle import CycleReport, check_watches
from bot.store.stores import Stores, open_stores
from handlers.dns.resolver import DnsSession, parse_nameserver
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.slackapp import app_settings
from tests.slackstub import SlackStandIn

PROVIDER = "provider.test"
INCLUDE = f"_spf.{PROVIDER}"
INCLUDE_RECORD = "v=spf1 ip4:192.0.2.0/24 -all"


@functools.cache
def dkim_key_record() -> str:
    """A real 2048-bit RSA DKIM key record (generated once per test run)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def provider_zone(include_record: str = INCLUDE_RECORD) -> str:
    """The mail provider's zone: the SPF include every watched domain names."""
    return make_zone(PROVIDER, [("_spf", "TXT", include_record)])


def domain_zone(
    domain: str,
    *,
    spf: str | None = f"v=spf1 include:{INCLUDE} -all",
    dmarc: str | None = None,
    dkim: str | None = "key",
    mx: bool = True,
    selector: str = "sel",
) -> str:
    """A watched domain that passes DMARC through SPF; None leaves a record out."""
    records = []
    if spf is not None:
        records.append(("@", "TXT", spf))
    dmarc = dmarc if dmarc is not None else f"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"
    if dmarc:
        records.append(("_dmarc", "TXT", dmarc))
    if dkim is not None:
        records.append((f"{selector}._domainkey", "TXT", dkim_key_record() if dkim == "key" else dkim))
    if mx:
        records += [("@", "MX", f"10 mx.{domain}."), ("mx", "A", "192.0.2.25")]
    return make_zone(domain, records)


@dataclass
class MonitorHarness:
    """A monitor over `db_path`, asking `dns`, posting to `slack`."""

    stores: Stores
    settings: Settings
    slack: SlackStandIn
    dns: NsdServer | FaultProxy
    # Generous: answers come back at once, and only a test that injects a timeout waits it out;
    # a short one reads a loaded machine (parallel workers) as a DNS outage.
    timeout: float = 1.0
    pacer_spacing: float = 0.0  # the spacing has its own test; others need not wait

    def cycle(self) -> tuple[CycleReport, DeliveryReport]:
        """One `monitor --once`: check every watch through one fresh session, then deliver."""
        session = DnsSession(
            nameservers=(parse_nameserver(self.dns.address),), timeout=self.timeout, attempts=1
        )
        checked = check_watches(self.stores, session)
        return checked, self.deliver()

    def deliver(self) -> DeliveryReport:
        return deliver_pending(
            self.stores.outbox, client_for_team_factory(self.settings), ChannelPacer(self.pacer_spacing)
        )

    def watch(
        self, domain: str, channel: str = "C1", team: str = "T1", selectors: tuple[str, ...] = ("sel",)
    ) -> None:
        self.stores.watches.add_watch(team, channel, domain, list(selectors), added_by="U1")


def make_harness(tmp_path: Path, slack: SlackStandIn, dns: NsdServer | FaultProxy) -> MonitorHarness:
    """A harness with its own database file in tmp_path."""
    db = tmp_path / "monitor.db"
    settings = app_settings(slack, db, dns.address)
    return MonitorHarness(open_stores(str(db)), settings, slack, dns)
