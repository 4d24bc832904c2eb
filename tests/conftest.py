"""Shared fixtures: a real DNS server (NSD) and a fault-injecting proxy in front of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.slack.app import FEATURES
from bot.slack.features import Feature
from handlers.dns.resolver import DnsSession, parse_nameserver
from tests.dnstest import FaultProxy, NsdServer
from tests.slackapp import RunningApp, app_settings, start_app
from tests.slackstub import SlackStandIn

ZONES_DIR = Path(__file__).parent / "zones"


def static_zones() -> dict[str, str]:
    """Every `tests/zones/<origin>.zone`, as origin -> zone text."""
    return {path.name.removesuffix(".zone"): path.read_text() for path in sorted(ZONES_DIR.glob("*.zone"))}


@pytest.fixture(scope="session")
def nsd_static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    """NSD serving every static zone file in tests/zones/, for the whole run. Do not change it."""
    server = NsdServer(tmp_path_factory.mktemp("nsd-static"))
    try:
        server.start(static_zones())
        yield server
    finally:
        server.stop()


@pytest.fixture
def nsd(tmp_path: Path) -> Iterator[NsdServer]:
    """A fresh NSD with no zones (it answers REFUSED) for this test to fill with set_zone(s)."""
    server = NsdServer(tmp_path / "nsd")
    try:
        server.start({})
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_proxy(nsd: NsdServer) -> Iterator[FaultProxy]:
    """A FaultProxy in front of this test's `nsd`, with no faults and no latency."""
    proxy = FaultProxy((nsd.host, nsd.port))
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()


SessionFactory = Callable[..., DnsSession]


@pytest.fixture
def make_session() -> SessionFactory:
    """make_session(server_or_"host:port", timeout=1.0, attempts=1) -> a DnsSession asking it.

    An answer returns as soon as it arrives, so the timeout costs only a test that waits one out; it
    is large enough that a loopback answer delayed by a loaded machine (parallel workers on 2 cores)
    is not taken for an outage. Tests of timeouts pass their own, shorter one."""

    def factory(server: NsdServer | FaultProxy | str, timeout: float = 1.0, attempts: int = 1) -> DnsSession:
        address = server if isinstance(server, str) else server.address
        return DnsSession(nameservers=(parse_nameserver(address),), timeout=timeout, attempts=attempts)

    return factory


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A stand-in for Slack's Web API (and response_urls, file downloads) on a free port."""
    stand_in = SlackStandIn()
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


AppFactory = Callable[..., RunningApp]


@pytest.fixture
def make_app(slack: SlackStandIn, tmp_path: Path) -> Iterator[AppFactory]:
    """make_app(dns_server_or_"host:port", features=FEATURES, **settings) -> the app running over
    HTTP, its own database file in tmp_path, its Web API calls going to `slack`. Stopped after
    the test."""
    started: list[RunningApp] = []

    def factory(
        dns: NsdServer | FaultProxy | str, features: tuple[Feature, ...] = FEATURES, **overrides: object
    ) -> RunningApp:
        address = dns if isinstance(dns, str) else dns.address
        settings = app_settings(slack, tmp_path / "dmarcbot.db", address, **overrides)
        app = start_app(settings, slack, features)
        started.append(app)
        return app

    yield factory
    for app in started:
        app.stop()
