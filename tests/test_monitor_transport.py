"""The monitor watches MTA-STS, TLS-RPT and BIMI: records, the policy file, certificate expiry.

Real parts: NSD behind the fault proxy (so a test can see which names were looked up), an HTTPS
server on 127.x.y.z:443 with a test CA serving the policy, the logo and the VMC, a real SQLite file
and the Slack stand-in receiving the alerts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.monitor.alert_delivery import DeliveryReport
from bot.monitor.cycle import CycleReport, check_watches
from bot.monitor.watch_state import TRANSPORT_PREFIXES, _state
from bot.store.database import utcnow
from bot.store.stores import open_stores
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.https_fetch import HttpsClient
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.httpstest import HttpsServer, LocalCa, Page
from tests.slackstub import SlackStandIn
from tests.test_bimi import GOOD_SVG
from tests.test_bimi_certificate import Issuer
from tests.watchtest import INCLUDE, PROVIDER, MonitorHarness, dkim_key_record, make_harness, provider_zone

DOMAIN = "example.test"
PLAIN = "example-plain.test"  # publishes no _mta-sts record and no BIMI record
POLICY = b"version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 604800\r\n"
POLICY_NAME = f"MTA-STS policy https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt"
MTA_STS_DAYS = 40  # the policy host's certificate
VMC_DAYS = 60
# a loopback address where nothing listens on 443: a connection there is refused at once
NOBODY = "127.254.254.253"


def zone(
    domain: str,
    server: str,
    *,
    policy_host: str | None = None,
    logo_host: str | None = None,
    tls_rpt: str = "v=TLSRPTv1; rua=mailto:tls@example.test",
    bimi: str | None = None,
    transport: bool = True,
) -> str:
    records = [
        ("@", "TXT", f"v=spf1 include:{INCLUDE} -all"),
        ("_dmarc", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"),
        ("sel._domainkey", "TXT", dkim_key_record()),
        ("@", "MX", f"10 mx.{domain}."),
        ("mx", "A", "192.0.2.25"),
    ]
    if transport:
        records += [
            ("_mta-sts", "TXT", "v=STSv1; id=20260101"),
            ("mta-sts", "A", policy_host or server),
            ("_smtp._tls", "TXT", tls_rpt),
            (
                "default._bimi",
                "TXT",
                bimi or f"v=BIMI1; l=https://logo.{domain}/logo.svg; a=https://vmc.{domain}/vmc.pem",
            ),
            ("logo", "A", logo_host or server),
            ("vmc", "A", logo_host or server),
        ]
    return make_zone(domain, records)


@pytest.fixture
def ca(tmp_path: Path) -> LocalCa:
    workdir = tmp_path / "ca"
    workdir.mkdir()
    return LocalCa(workdir)


@pytest.fixture
def https(ca: LocalCa) -> Iterator[HttpsServer]:
    server = HttpsServer(ca)
    policy_host = f"mta-sts.{DOMAIN}"
    server.add(policy_host, ca.leaf([policy_host], days=MTA_STS_DAYS), Page(body=POLICY))
    logo = f"logo.{DOMAIN}"
    server.add(logo, ca.leaf([logo]), Page(body=GOOD_SVG, headers={"Content-Type": "image/svg+xml"}))
    vmc = f"vmc.{DOMAIN}"
    mark = Issuer(ca.key, ca.certificate).intermediate("test MVA").mark([DOMAIN], days=VMC_DAYS)
    server.add(vmc, ca.leaf([vmc]), Page(body=mark))
    with server:
        yield server


@pytest.fixture
def world(nsd: NsdServer, https: HttpsServer) -> NsdServer:
    nsd.set_zones(
        {
            PROVIDER: provider_zone(),
            DOMAIN: zone(DOMAIN, https.address),
            PLAIN: zone(PLAIN, https.address, transport=False),
        }
    )
    return nsd


@pytest.fixture
def monitor(
    tmp_path: Path, slack: SlackStandIn, world: NsdServer, fault_proxy: FaultProxy
) -> Iterator[MonitorHarness]:
    harness = make_harness(tmp_path, slack, fault_proxy)
    yield harness
    harness.stores.close()
    slack.assert_no_violations()


def cycle(
    monitor: MonitorHarness, ca: LocalCa, now: datetime | None = None
) -> tuple[CycleReport, DeliveryReport]:
    """`monitor --once` with DMARCBOT_CA_FILE pointing at the test CA, at `now`."""
    session = DnsSession(nameservers=(parse_nameserver(monitor.dns.address),), timeout=1.0, attempts=1)
    https = HttpsClient(ca_file=str(ca.ca_file))
    # these cycles run months ahead: the never-received reports hint would come too, and it is
    # not what these tests are about (tests/test_report_silence.py is)
    checked = check_watches(monitor.stores, session, now=now, https=https, reports_silence_days=366)
    assert checked.errors == []
    return checked, monitor.deliver()


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def latest_records(monitor: MonitorHarness) -> dict[str, str | None]:
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None
    snapshot = monitor.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None
    return snapshot.records


def test_the_transport_records_and_the_policy_file_are_watched(
    monitor: MonitorHarness, ca: LocalCa, https: HttpsServer, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 0 and delivered.messages_posted == 0  # the baseline
    records = latest_records(monitor)
    assert records[f"MTA-STS _mta-sts.{DOMAIN}"] == "v=STSv1; id=20260101"
    assert records[POLICY_NAME] == "version: STSv1\nmode: testing\nmx: mx.example.test\nmax_age: 604800"
    assert records[f"TLS-RPT _smtp._tls.{DOMAIN}"] == "v=TLSRPTv1; rua=mailto:tls@example.test"
    assert records[f"BIMI default._bimi.{DOMAIN}"].startswith("v=BIMI1; l=https://logo.")  # type: ignore[union-attr]

    # the policy file changes, the records do not: a change, with its before and after
    https.pages[f"mta-sts.{DOMAIN}"] = Page(body=POLICY.replace(b"testing", b"enforce"))
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    text = all_text(slack.posts()[0].blocks)
    assert "MTA-STS policy `https://mta-sts.example.test/.well-known/mta-sts.txt`* changed" in text
    assert "mode: testing" in text and "mode: enforce" in text
    assert "`mta_sts.testing`" in text  # the warning that cleared with it

    # the TLS-RPT and BIMI records change
    world.set_zone(
        DOMAIN,
        zone(
            DOMAIN,
            https.address,
            tls_rpt="v=TLSRPTv1; rua=mailto:other@example.test",
            bimi=f"v=BIMI1; l=https://logo.{DOMAIN}/logo.svg",
        ),
    )
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    text = all_text(slack.posts()[1].blocks)
    assert "TLS-RPT `_smtp._tls.example.test`* changed" in text and "mailto:other@example.test" in text
    assert "BIMI `default._bimi.example.test`* changed" in text
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 0 and len(slack.posts()) == 2  # nothing new: nothing said


def test_an_unreachable_policy_or_logo_host_is_never_a_change(
    monitor: MonitorHarness, ca: LocalCa, https: HttpsServer, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    cycle(monitor, ca)
    before = latest_records(monitor)
    world.set_zone(DOMAIN, zone(DOMAIN, https.address, policy_host=NOBODY, logo_host=NOBODY))
    for _ in range(4):
        checked, delivered = cycle(monitor, ca)
        # the check ran and was stored (the same state seen again), and nothing was said
        assert checked.watches == 1 and checked.outages == 0
        assert checked.alerts_written == 0 and delivered.messages_posted == 0
    assert latest_records(monitor) == before
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.last_status == "pass" and watch.temperror_streak == 0
    snapshot = monitor.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None and snapshot.checks == 5
    unreachable = ("mta_sts.policy_unreachable", "bimi.logo_unreachable", "bimi.certificate_invalid")
    assert all(f["id"] not in unreachable for f in snapshot.findings)
    assert slack.posts() == []
    # an answer the host gives is its state, not an outage: the policy gone (404) is a change
    world.set_zone(DOMAIN, zone(DOMAIN, https.address))
    https.pages[f"mta-sts.{DOMAIN}"] = Page(404, b"gone")
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    text = all_text(slack.posts()[0].blocks)
    assert "`mta_sts.policy_unreachable`" in text and "HTTP 404" in text


def test_a_dns_outage_of_the_policy_host_is_an_outage_never_a_change(
    monitor: MonitorHarness, ca: LocalCa, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    cycle(monitor, ca)
    fault_proxy.add_fault(f"mta-sts.{DOMAIN}", "servfail", "A")
    checked, delivered = cycle(monitor, ca)
    assert checked.outages == 1 and checked.alerts_written == 0 and delivered.messages_posted == 0
    fault_proxy.clear_faults()
    checked, delivered = cycle(monitor, ca)
    assert checked.outages == 0 and checked.alerts_written == 0
    assert slack.posts() == []


def test_no_https_fetch_for_a_domain_without_mta_sts_or_bimi(
    monitor: MonitorHarness, ca: LocalCa, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    monitor.watch(PLAIN)
    checked, _ = cycle(monitor, ca)
    assert checked.watches == 1 and checked.outages == 0
    assert (
        fault_proxy.count(f"_mta-sts.{PLAIN}", "TXT") == 1
        and fault_proxy.count(f"default._bimi.{PLAIN}") == 1
    )
    # no address is looked up for any host to fetch from, so nothing is fetched
    fetched = [
        q for q in fault_proxy.queries if q[1] in ("A", "AAAA") and q[0].startswith(("mta-sts.", "logo."))
    ]
    assert fetched == []
    watch = monitor.stores.watches.watch("T1", PLAIN)
    assert watch is not None
    snapshot = monitor.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None
    assert snapshot.records[f"MTA-STS _mta-sts.{PLAIN}"] is None
    assert snapshot.records[f"MTA-STS policy https://mta-sts.{PLAIN}/.well-known/mta-sts.txt"] is None


def test_certificate_expiry_alerts_30_and_7_days_ahead_once_each_across_restarts(
    monitor: MonitorHarness, ca: LocalCa, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    start = utcnow()
    checked, _ = cycle(monitor, ca, start)
    assert checked.alerts_written == 0

    def said(days: int) -> list[str]:
        """The alerts one cycle `days` after the start wrote."""
        before = len(monitor.stores.outbox.alerts("T1"))
        checked, _ = cycle(monitor, ca, start + timedelta(days=days))
        new = monitor.stores.outbox.alerts("T1")[before:]
        assert checked.alerts_written == len(new)
        return [a.text for a in new]

    assert said(5) == []  # 35 and 55 days left
    (first,) = said(15)  # the policy host's: 25 days left
    assert "mta-sts.example.test" in first and re.search(r"in 2[45] day\(s\)", first)
    assert slack.posts()[-1].text.startswith(f"{DOMAIN}: a certificate expires soon")
    assert said(16) == []  # said once
    # a restart: a new process on the same database file
    monitor.stores.close()
    monitor.stores = open_stores(str(Path(monitor.settings.db_path)))
    assert said(17) == []
    # the policy host's last week (5 days left), the VMC's month (25 days): one message for both
    posts = len(slack.posts())
    policy_host, vmc = said(35)
    assert "mta-sts.example.test (the MTA-STS policy host) expires on" in policy_host
    assert re.search(r"in [45] day\(s\)", policy_host)
    assert "The BIMI certificate (VMC) at `https://vmc.example.test/vmc.pem` expires on" in vmc
    assert len(slack.posts()) == posts + 1
    digest = all_text(slack.posts()[-1].blocks)
    assert "mta-sts.example.test" in digest and "vmc.example.test" in digest
    assert said(36) == []
    (last,) = said(55)  # the VMC's last week
    assert "BIMI certificate (VMC)" in last and re.search(r"in [45] day\(s\)", last)
    assert said(56) == []
    kinds = [a.kind for a in monitor.stores.outbox.alerts("T1")]
    assert kinds == ["certificate_expiring"] * 4


@pytest.mark.parametrize("unreachable_at_upgrade", [False, True])
def test_a_state_from_before_the_transport_records_were_watched_takes_them_silently(
    monitor: MonitorHarness,
    ca: LocalCa,
    https: HttpsServer,
    world: NsdServer,
    slack: SlackStandIn,
    unreachable_at_upgrade: bool,
) -> None:
    monitor.watch(DOMAIN)
    cycle(monitor, ca)
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None
    snapshot = monitor.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None
    # the state an older version stored: the same, without the transport records
    old_records = {n: v for n, v in snapshot.records.items() if not n.startswith(TRANSPORT_PREFIXES)}
    assert old_records != snapshot.records
    old = _state(old_records, snapshot.findings, snapshot.verdict)
    with monitor.stores.database.write() as db:
        db.execute(
            "UPDATE snapshots SET records = ?, fingerprint = ? WHERE id = ?",
            [json.dumps(old.records, sort_keys=True), old.fingerprint, snapshot.id],
        )
    if unreachable_at_upgrade:
        # the policy host does not answer at the first check that watches it: nothing is said
        # then, nor when it answers again and its file is first seen
        world.set_zone(DOMAIN, zone(DOMAIN, https.address, policy_host=NOBODY))
        checked, delivered = cycle(monitor, ca)
        assert checked.watches == 1 and checked.alerts_written == 0 and delivered.messages_posted == 0
        assert POLICY_NAME not in latest_records(monitor)
        world.set_zone(DOMAIN, zone(DOMAIN, https.address))
    checked, delivered = cycle(monitor, ca)
    assert checked.watches == 1 and checked.alerts_written == 0 and delivered.messages_posted == 0
    assert latest_records(monitor) == snapshot.records  # now known, so later changes are compared
    # and they are: the policy file changes
    https.pages[f"mta-sts.{DOMAIN}"] = Page(body=POLICY.replace(b"604800", b"1209600"))
    checked, delivered = cycle(monitor, ca)
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    assert "max_age: 1209600" in all_text(slack.posts()[0].blocks)
