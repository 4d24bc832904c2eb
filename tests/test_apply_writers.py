"""Writing a plan's records through a real PowerDNS (dns-lexicon) and a real BIND (RFC 2136 with TSIG),
checked by DNS queries to those servers: only the plan's records change, a record changed since
the plan is refused, a provider error half-way leaves the zone as it was."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.apply.apply import (
    CHANGED_SINCE_PLAN,
    ApplyEvent,
    ApplyOutcome,
    apply_changes,
    wait_until_served,
    writer_for,
)
from bot.apply.providers import Secret, ZoneProvider
from handlers.dns.resolver import Nameserver
from handlers.fixes.changes import RecordChange, rollback_of
from tests.applytest import bind_zone, fresh_zone, pdns, pdns_zone, served, session_for
from tests.dnstest.nsd import NsdServer
from tests.dnstest.pdns import PdnsServer
from tests.dnstest.zones import make_zone

__all__ = ["pdns"]  # the module-scoped PowerDNS fixture

pytestmark = pytest.mark.slow

VERIFY = "google-site-verification=k3y"
OLD_SPF = "v=spf1 include:_spf.google.com -all"
NEW_SPF = "v=spf1 include:_spf.google.com include:sendgrid.net -all"
OLD_DMARC = "v=DMARC1; p=none"
NEW_DMARC = "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"


def run(
    zone: ZoneProvider,
    changes: Sequence[RecordChange],
    events: list[ApplyEvent] | None = None,
    servers: Sequence[Nameserver] | None = None,
    dry_run: bool = False,
) -> ApplyOutcome:
    log: list[ApplyEvent] = [] if events is None else events
    return apply_changes(
        zone,
        writer_for(zone, timeout=5),
        changes,
        servers or zone.nameservers,
        session_for,
        log.append,
        dry_run=dry_run,
        poll_interval=0.1,
    )


def test_powerdns_spf_replaced_and_the_other_apex_txt_survives(pdns: PdnsServer) -> None:
    name = fresh_zone()
    zone = pdns_zone(pdns, name, [("@", "TXT", VERIFY), ("@", "TXT", OLD_SPF), ("_dmarc", "TXT", OLD_DMARC)])
    events: list[ApplyEvent] = []
    outcome = run(zone, [RecordChange(name, "TXT", (OLD_SPF,), (NEW_SPF,))], events)
    assert (outcome.result, outcome.live) == ("applied", True)
    assert served(pdns, name) == sorted([VERIFY, NEW_SPF])
    assert served(pdns, f"_dmarc.{name}") == [OLD_DMARC]
    assert [(e.action, e.result) for e in events] == [("write", "written")]


def test_powerdns_long_spf_over_255_bytes_is_served_joined(pdns: PdnsServer) -> None:
    name = fresh_zone()
    zone = pdns_zone(pdns, name, [("@", "TXT", VERIFY), ("@", "TXT", OLD_SPF)])
    long_spf = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(1, 40)) + " -all"
    assert len(long_spf) > 255
    assert run(zone, [RecordChange(name, "TXT", (OLD_SPF,), (long_spf,))]).live
    assert served(pdns, name) == sorted([VERIFY, long_spf])


def test_powerdns_merges_two_spf_records_into_one(pdns: PdnsServer) -> None:
    name = fresh_zone()
    second = "v=spf1 include:sendgrid.net -all"
    zone = pdns_zone(pdns, name, [("@", "TXT", VERIFY), ("@", "TXT", OLD_SPF), ("@", "TXT", second)])
    assert run(zone, [RecordChange(name, "TXT", (OLD_SPF, second), (NEW_SPF,))]).live
    assert served(pdns, name) == sorted([VERIFY, NEW_SPF])


def test_powerdns_record_changed_since_the_plan_is_refused_and_nothing_written(pdns: PdnsServer) -> None:
    name = fresh_zone()
    zone = pdns_zone(pdns, name, [("@", "TXT", VERIFY), ("_dmarc", "TXT", "v=DMARC1; p=reject")])
    events: list[ApplyEvent] = []
    outcome = run(zone, [RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,))], events)
    assert outcome.result == "refused" and outcome.message.startswith(CHANGED_SINCE_PLAN)
    assert "live is v=DMARC1; p=reject" in outcome.message
    assert served(pdns, f"_dmarc.{name}") == ["v=DMARC1; p=reject"]
    assert [e.action for e in events] == ["refusal"]


def test_powerdns_dry_run_checks_and_writes_nothing(pdns: PdnsServer) -> None:
    name = fresh_zone()
    zone = pdns_zone(pdns, name, [("_dmarc", "TXT", OLD_DMARC)])
    outcome = run(zone, [RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,))], dry_run=True)
    assert outcome.result == "dry_run"
    assert served(pdns, f"_dmarc.{name}") == [OLD_DMARC]


def test_powerdns_error_half_way_through_two_changes_leaves_the_zone_as_it_was(pdns: PdnsServer) -> None:
    name = fresh_zone()
    key = "v=DKIM1; k=rsa; p=MIGfMA0"
    zone = pdns_zone(
        pdns, name, [("@", "TXT", VERIFY), ("_dmarc", "TXT", OLD_DMARC), ("s1._domainkey", "TXT", key)]
    )
    # The second change is refused by PowerDNS itself: a CNAME beside the selector's TXT (RFC 1034
    # §3.6.2) that the plan did not delete, so the first change must be written back.
    changes = [
        RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,)),
        RecordChange(f"s1._domainkey.{name}", "CNAME", (), ("s1.domainkey.provider.test",)),
    ]
    events: list[ApplyEvent] = []
    outcome = run(zone, changes, events)
    assert outcome.result == "provider_error" and outcome.rolled_back
    assert "powerdns write of s1._domainkey" in outcome.message and "HTTP 422" in outcome.message
    assert "every record written was restored" in outcome.message
    assert served(pdns, f"_dmarc.{name}") == [OLD_DMARC]
    assert served(pdns, f"s1._domainkey.{name}") == [key]
    assert served(pdns, name) == [VERIFY]
    assert [e.action for e in events] == ["write", "provider_error", "rollback", "rollback"]
    assert pdns.api_key not in outcome.message


def test_powerdns_a_cname_replaces_the_selector_txt(pdns: PdnsServer) -> None:
    name = fresh_zone()
    key = "v=DKIM1; k=rsa; p=MIGfMA0"
    zone = pdns_zone(pdns, name, [("s1._domainkey", "TXT", key)])
    host = f"s1._domainkey.{name}"
    changes = [
        RecordChange(host, "TXT", (key,), ()),
        RecordChange(host, "CNAME", (), ("s1.dkim.provider.test",)),
    ]
    assert run(zone, changes).live
    assert served(pdns, host, "CNAME") == ["s1.dkim.provider.test"]
    # Rolling back restores the exact before.
    assert run(zone, rollback_of(changes)).live
    assert served(pdns, host) == [key] and served(pdns, host, "CNAME") == []


def test_powerdns_wrong_token_is_a_provider_error_without_the_token(pdns: PdnsServer) -> None:
    name = fresh_zone()
    zone = pdns_zone(pdns, name, [("_dmarc", "TXT", OLD_DMARC)])
    bad = "not-the-key-41c7"
    zone = type(zone)(**{**zone.__dict__, "secrets": {"auth_token": Secret("PDNS_API_KEY", bad)}})
    outcome = run(zone, [RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,))])
    assert outcome.result == "provider_error"
    assert "HTTP 401" in outcome.message and bad not in outcome.message
    assert served(pdns, f"_dmarc.{name}") == [OLD_DMARC]


def test_not_live_when_the_servers_asked_never_serve_it(pdns: PdnsServer, nsd: NsdServer) -> None:
    name = fresh_zone()
    records = [("_dmarc", "TXT", OLD_DMARC)]
    zone = pdns_zone(pdns, name, records, propagation_timeout=0.5)
    nsd.set_zone(name, make_zone(name, records))  # a secondary that never gets the change
    outcome = run(
        zone,
        [RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,))],
        servers=[Nameserver(nsd.host, nsd.port)],
    )
    assert outcome.result == "not_live" and not outcome.live
    assert "did not serve it within 0.5 s" in outcome.message
    assert served(pdns, f"_dmarc.{name}") == [NEW_DMARC]  # written to the provider all the same


def test_an_outage_is_not_taken_as_served() -> None:
    dead = [Nameserver("127.0.0.1", 9)]  # nothing answers there: every round is an outage
    change = RecordChange("_dmarc.example.test", "TXT", (), ())
    assert not wait_until_served(dead, [change], session_for, timeout=0.3, interval=0.1)


def test_bind_spf_replaced_by_a_signed_update_and_the_other_txt_survives(tmp_path: Path) -> None:
    name = fresh_zone("bind")
    server, zone = bind_zone(
        tmp_path, name, [("@", "TXT", VERIFY), ("@", "TXT", OLD_SPF), ("_dmarc", "TXT", OLD_DMARC)]
    )
    with server:
        changes = [
            RecordChange(name, "TXT", (OLD_SPF,), (NEW_SPF,)),
            RecordChange(f"_dmarc.{name}", "TXT", (OLD_DMARC,), (NEW_DMARC,)),
        ]
        outcome = run(zone, changes)
        assert (outcome.result, outcome.live) == ("applied", True)
        assert served(server, name) == sorted([VERIFY, NEW_SPF])
        assert served(server, f"_dmarc.{name}") == [NEW_DMARC]
        assert run(zone, rollback_of(changes)).live
        assert served(server, name) == sorted([VERIFY, OLD_SPF])
        assert served(server, f"_dmarc.{name}") == [OLD_DMARC]


def test_bind_refuses_a_wrong_tsig_key_and_nothing_changes(tmp_path: Path) -> None:
    name = fresh_zone("bind")
    server, zone = bind_zone(tmp_path, name, [("@", "TXT", VERIFY), ("@", "TXT", OLD_SPF)])
    wrong = "d3JvbmctdHNpZy1zZWNyZXQtdmFsdWUtaGVyZQ=="
    zone = type(zone)(**{**zone.__dict__, "secrets": {"tsig_secret": Secret("TSIG_SECRET", wrong)}})
    with server:
        outcome = run(zone, [RecordChange(name, "TXT", (OLD_SPF,), (NEW_SPF,))])
        assert outcome.result == "provider_error"
        assert "rfc2136 update of" in outcome.message and wrong not in outcome.message
        assert served(server, name) == sorted([VERIFY, OLD_SPF])
