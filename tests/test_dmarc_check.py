"""check_dmarc through a real NSD: every dmarc.* finding present and absent, the RFC 9989 tree walk, and
the DNS failure matrix (an outage is `dns.temperror`, never `dmarc.missing`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from handlers.domain.dmarc import DmarcReport, check_dmarc
from handlers.domain.dmarc_discovery import tree_walk_names
from handlers.domain.findings import CATALOG, Severity
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone

RUA = "rua=mailto:dmarc@{d}"

# name -> the TXT strings at _dmarc.<name> (all under the one "test" zone, so the walk's last step,
# _dmarc.test, is answered authoritatively rather than REFUSED).
DMARC_RECORDS: dict[str, list[str]] = {
    "good.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@good.test"],
    "quarantine.test": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@quarantine.test"],
    "none.test": ["v=DMARC1; p=none; rua=mailto:dmarc@none.test"],
    "testing.test": ["v=DMARC1; p=reject; t=y; rua=mailto:dmarc@testing.test"],
    "testing-q.test": ["v=DMARC1; p=quarantine; t=y; rua=mailto:dmarc@testing-q.test"],
    "testing-n.test": ["v=DMARC1; p=reject; t=n; rua=mailto:dmarc@testing-n.test"],
    "sp-weaker.test": ["v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@sp-weaker.test"],
    "np-weaker.test": ["v=DMARC1; p=reject; np=quarantine; rua=mailto:dmarc@np-weaker.test"],
    "sp-stronger.test": [
        "v=DMARC1; p=quarantine; sp=reject; np=quarantine; rua=mailto:dmarc@sp-stronger.test"
    ],
    "norua.test": ["v=DMARC1; p=reject"],
    "ruf-only.test": ["v=DMARC1; p=reject; ruf=mailto:f@ruf-only.test"],
    "syntax-block.test": ["v=DMARC1; p=block; rua=mailto:dmarc@syntax-block.test"],
    "syntax-rua.test": ["v=DMARC1; p=reject; rua=dmarc@syntax-rua.test"],
    "syntax-web-rua.test": ["v=DMARC1; p=reject; rua=https://syntax-web-rua.test/dmarc"],
    "syntax-fo.test": ["v=DMARC1; p=reject; fo=x; rua=mailto:dmarc@syntax-fo.test"],
    "syntax-unusable.test": ["v=DMARC1; p=block"],
    "no-p.test": ["v=DMARC1; rua=mailto:dmarc@no-p.test"],
    "multiple.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@multiple.test", "v=DMARC1; p=none"],
    "one-plus-noise.test": [
        "v=DMARC1; p=reject; rua=mailto:dmarc@one-plus-noise.test",
        "some-verification-token=abc",
    ],
    "pct.test": ["v=DMARC1; p=reject; pct=50; rua=mailto:dmarc@pct.test"],
    "rf.test": ["v=DMARC1; p=reject; rf=afrf; rua=mailto:dmarc@rf.test"],
    "ri.test": ["v=DMARC1; p=reject; ri=86400; rua=mailto:dmarc@ri.test"],
    "all-deprecated.test": [
        "v=DMARC1; p=reject; pct=100; rf=afrf; ri=3600; rua=mailto:dmarc@all-deprecated.test"
    ],
    "rua-ext.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@collector.test"],
    "ruf-ext.test": ["v=DMARC1; p=reject; rua=mailto:d@ruf-ext.test; ruf=mailto:f@collector.test"],
    "rua-auth.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@collector.test"],
    "rua-wild.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@wildcollector.test"],
    "rua-mixed.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@collector.test,mailto:x@other-collector.test"],
    "rua-same.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@reports.rua-same.test"],
    "rua-parent.sub-org.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@sub-org.test"],
    "rua-badauth.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@collector.test"],
    # an attacker's record: 2,000 report destinations, each in its own organization
    "rua-many.test": ["v=DMARC1; p=reject; rua=" + ",".join(f"mailto:r@c{i}.test" for i in range(2000))],
    "org.test": ["v=DMARC1; p=quarantine; sp=reject; rua=mailto:dmarc@org.test"],
    "org-nosp.test": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@org-nosp.test"],
    "org-spnone.test": ["v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@org-spnone.test"],
    "org-testing.test": ["v=DMARC1; p=reject; t=y; rua=mailto:dmarc@org-testing.test"],
    "noise-sub.org.test": ["not a dmarc record"],
    "broken-sub.org.test": ["v=DMARC1; p=block"],
    "multi-sub.org.test": ["v=DMARC1; p=none", "v=DMARC1; p=reject"],
}

OTHER_RECORDS = [
    ("rua-auth.test._report._dmarc.collector", "TXT", "v=DMARC1"),
    ("rua-mixed.test._report._dmarc.collector", "TXT", "v=DMARC1"),
    ("*._report._dmarc.wildcollector", "TXT", "v=DMARC1"),
    ("rua-badauth.test._report._dmarc.collector", "TXT", "v=spf1 -all"),
    ("mail.org", "A", "192.0.2.10"),
    ("missing", "A", "192.0.2.11"),
    ("_dmarc.loop", "CNAME", "_dmarc.loop-back.test."),
    ("_dmarc.loop-back", "CNAME", "_dmarc.loop.test."),
]


def _world_zone() -> str:
    records = [
        (f"_dmarc.{name.removesuffix('.test')}", "TXT", value)
        for name, values in DMARC_RECORDS.items()
        for value in values
    ]
    return make_zone("test", [*records, *OTHER_RECORDS])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-dmarc"))
    with server.start({"test": _world_zone()}):
        yield server


@pytest.fixture
def proxy(world: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((world.host, world.port)) as fault_proxy:
        yield fault_proxy


def run_check(session_factory: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> DmarcReport:
    return asyncio.run(check_dmarc(session_factory(server), domain))


def ids(report: DmarcReport) -> list[str]:
    return sorted(f.id for f in report.findings)


# (domain, finding ids exactly, applied policy, where the record was found)
SCENARIOS = [
    ("good.test", [], "reject", "good.test"),
    ("quarantine.test", [], "quarantine", "quarantine.test"),
    ("none.test", ["dmarc.policy_none"], "none", "none.test"),
    ("testing.test", ["dmarc.testing"], "quarantine", "testing.test"),
    ("testing-q.test", ["dmarc.policy_none", "dmarc.testing"], "none", "testing-q.test"),
    ("testing-n.test", [], "reject", "testing-n.test"),
    ("sp-weaker.test", ["dmarc.subdomain_weaker"], "reject", "sp-weaker.test"),
    ("np-weaker.test", ["dmarc.subdomain_weaker"], "reject", "np-weaker.test"),
    ("sp-stronger.test", [], "quarantine", "sp-stronger.test"),
    ("norua.test", ["dmarc.no_rua"], "reject", "norua.test"),
    ("ruf-only.test", ["dmarc.no_rua"], "reject", "ruf-only.test"),
    ("syntax-block.test", ["dmarc.policy_none", "dmarc.syntax"], "none", "syntax-block.test"),
    ("syntax-rua.test", ["dmarc.no_rua", "dmarc.syntax"], "reject", "syntax-rua.test"),
    ("syntax-web-rua.test", ["dmarc.no_rua", "dmarc.syntax"], "reject", "syntax-web-rua.test"),
    ("syntax-fo.test", ["dmarc.syntax"], "reject", "syntax-fo.test"),
    ("syntax-unusable.test", ["dmarc.syntax"], None, "syntax-unusable.test"),
    ("no-p.test", ["dmarc.policy_none", "dmarc.syntax"], "none", "no-p.test"),
    ("multiple.test", ["dmarc.multiple"], None, None),
    ("one-plus-noise.test", [], "reject", "one-plus-noise.test"),
    ("pct.test", ["dmarc.deprecated_tag"], "reject", "pct.test"),
    ("rf.test", ["dmarc.deprecated_tag"], "reject", "rf.test"),
    ("ri.test", ["dmarc.deprecated_tag"], "reject", "ri.test"),
    ("all-deprecated.test", ["dmarc.deprecated_tag"] * 3, "reject", "all-deprecated.test"),
    ("rua-ext.test", ["dmarc.rua_unauthorized"], "reject", "rua-ext.test"),
    ("ruf-ext.test", ["dmarc.rua_unauthorized"], "reject", "ruf-ext.test"),
    ("rua-auth.test", [], "reject", "rua-auth.test"),
    ("rua-wild.test", [], "reject", "rua-wild.test"),
    ("rua-mixed.test", ["dmarc.rua_unauthorized"], "reject", "rua-mixed.test"),
    ("rua-same.test", [], "reject", "rua-same.test"),
    ("rua-parent.sub-org.test", [], "reject", "rua-parent.sub-org.test"),
    ("rua-badauth.test", ["dmarc.rua_unauthorized"], "reject", "rua-badauth.test"),
    # inherited: no record at the name, the organizational domain's applies (sp= when present)
    ("mail.org.test", ["dmarc.inherited"], "reject", "org.test"),
    ("a.b.c.org.test", ["dmarc.inherited"], "reject", "org.test"),
    ("noise-sub.org.test", ["dmarc.inherited"], "reject", "org.test"),
    ("mail.org-nosp.test", ["dmarc.inherited"], "quarantine", "org-nosp.test"),
    (
        "mail.org-spnone.test",
        ["dmarc.inherited", "dmarc.policy_none", "dmarc.subdomain_weaker"],
        "none",
        "org-spnone.test",
    ),
    ("mail.org-testing.test", ["dmarc.inherited", "dmarc.testing"], "quarantine", "org-testing.test"),
    ("org.test", [], "quarantine", "org.test"),
    ("missing.test", ["dmarc.missing"], None, None),
    ("sub.missing.test", ["dmarc.missing"], None, None),
    ("multi-sub.org.test", ["dmarc.multiple"], None, None),
    # the parent has two records: not "missing" (dmarc.multiple: DMARC is not applied)
    ("mail.multiple.test", ["dmarc.multiple"], None, None),
    # an own record that is not usable is reported as it is, not replaced by the parent's
    ("broken-sub.org.test", ["dmarc.syntax"], None, "broken-sub.org.test"),
]


@pytest.mark.parametrize(
    ("domain", "expected_ids", "policy", "location"), SCENARIOS, ids=[s[0] for s in SCENARIOS]
)
def test_findings(
    world: NsdServer,
    make_session: SessionFactory,
    domain: str,
    expected_ids: list[str],
    policy: str | None,
    location: str | None,
) -> None:
    report = run_check(make_session, world, domain)
    assert ids(report) == sorted(expected_ids), [f.detail for f in report.findings]
    assert report.policy == policy
    assert report.location == location
    for found in report.findings:
        assert found.severity == CATALOG[found.id].severity
        assert found.detail and found.fix
    if location is not None:
        assert report.record is not None
        assert report.record.raw in DMARC_RECORDS[location]
        assert report.to_json()["location"] == f"_dmarc.{location}"
        assert report.to_json()["inherited"] is (location != domain)


@pytest.mark.parametrize(
    ("domain", "needles"),
    [
        ("syntax-block.test", ["p=block is not a policy", "treat the record as p=none"]),
        ("syntax-rua.test", ["“dmarc@syntax-rua.test” is not a valid mailto: address"]),
        ("syntax-web-rua.test", ["is a web address"]),
        ("syntax-unusable.test", ["receivers ignore the record entirely"]),
        ("multiple.test", ["2 records", "v=DMARC1; p=none"]),
        ("mail.multiple.test", ["_dmarc.multiple.test has 2 records"]),
        ("pct.test", ["pct=50"]),
        ("rf.test", ["rf=afrf"]),
        ("ri.test", ["ri=86400"]),
        ("rua-ext.test", ["collector.test", "rua-ext.test._report._dmarc.collector.test"]),
        ("ruf-ext.test", ["ruf-ext.test._report._dmarc.collector.test"]),
        ("rua-mixed.test", ["rua-mixed.test._report._dmarc.other-collector.test"]),
        ("mail.org.test", ["_dmarc.org.test", "reject"]),
        ("sp-weaker.test", ["sp=none"]),
        ("np-weaker.test", ["np=quarantine"]),
        ("testing.test", ["quarantine instead of reject"]),
    ],
)
def test_finding_details_name_the_cause(
    world: NsdServer, make_session: SessionFactory, domain: str, needles: list[str]
) -> None:
    report = run_check(make_session, world, domain)
    text = "\n".join(f"{f.detail}\n{f.fix}\n{f.record or ''}" for f in report.findings)
    for needle in needles:
        assert needle in text


def test_rua_mixed_names_only_the_unauthorised_destination(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "rua-mixed.test")
    (unauthorized,) = [f for f in report.findings if f.id == "dmarc.rua_unauthorized"]
    assert "other-collector.test" in unauthorized.detail
    assert "rua-mixed.test._report._dmarc.collector.test" not in unauthorized.detail


def test_external_report_authorizations_are_capped(proxy: FaultProxy, make_session: SessionFactory) -> None:
    report = run_check(make_session, proxy, "rua-many.test")
    asked = {name for name, _, _ in proxy.queries if "_report._dmarc" in name}
    assert len(asked) == 10
    capped = [f for f in report.findings if "were checked for authorization" in f.detail]
    (note,) = capped
    assert note.id == "dmarc.rua_unauthorized"
    assert "2000 other organizations; only the first 10 were checked for authorization" in note.detail
    assert "Not checked: " in note.detail and "and 1970 more" in note.detail
    assert len(note.detail) < 1000


def test_a_cname_loop_is_a_configuration_error_not_an_outage(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "loop.test")
    assert "dns.temperror" not in ids(report)
    (loop,) = [f for f in report.findings if f.id == "dns.cname_loop"]
    assert "_dmarc.loop.test → _dmarc.loop-back.test" in loop.detail
    assert "retrying does not help" in loop.detail


def test_same_organization_rua_asks_no_authorization(proxy: FaultProxy, make_session: SessionFactory) -> None:
    run_check(make_session, proxy, "rua-same.test")
    assert not any("_report._dmarc" in name for name, _, _ in proxy.queries)


@pytest.mark.parametrize(
    ("domain", "walk"),
    [
        ("missing.test", ["missing.test", "test"]),
        ("sub.missing.test", ["sub.missing.test", "missing.test", "test"]),
        (
            "a.b.c.d.e.f.test",
            [
                "a.b.c.d.e.f.test",
                "b.c.d.e.f.test",
                "c.d.e.f.test",
                "d.e.f.test",
                "e.f.test",
                "f.test",
                "test",
            ],
        ),
        # 8 labels: the name, then 7, 6, ... 1 labels: 8 queries
        (
            "a.b.c.d.e.f.g.test",
            [
                "a.b.c.d.e.f.g.test",
                "b.c.d.e.f.g.test",
                "c.d.e.f.g.test",
                "d.e.f.g.test",
                "e.f.g.test",
                "f.g.test",
                "g.test",
                "test",
            ],
        ),
        # 12 labels: the name, then jump to its last 7 labels: still 8 queries (RFC 9989 §4.10)
        (
            "a.b.c.d.e.f.g.h.i.j.k.test",
            [
                "a.b.c.d.e.f.g.h.i.j.k.test",
                "f.g.h.i.j.k.test",
                "g.h.i.j.k.test",
                "h.i.j.k.test",
                "i.j.k.test",
                "j.k.test",
                "k.test",
                "test",
            ],
        ),
    ],
)
def test_missing_walks_the_tree(
    proxy: FaultProxy, make_session: SessionFactory, domain: str, walk: list[str]
) -> None:
    assert tree_walk_names(domain) == walk
    report = run_check(make_session, proxy, domain)
    assert ids(report) == ["dmarc.missing"]
    assert list(report.walked) == walk
    assert len(walk) <= 8
    asked = sorted(name for name, rdtype, _ in proxy.queries if rdtype == "TXT")
    assert asked == sorted(f"_dmarc.{name}" for name in walk)
    (missing,) = report.findings
    for name in walk:
        assert f"_dmarc.{name}" in missing.detail
    assert report.to_json()["tree_walk"] == [f"_dmarc.{name}" for name in walk]


@pytest.mark.parametrize(
    ("domain", "count"),
    [
        ("test", 1),
        ("example.test", 2),
        ("x." * 6 + "test", 7),
        ("x." * 7 + "test", 8),
        ("x." * 8 + "test", 8),
        ("x." * 30 + "test", 8),
    ],
)
def test_tree_walk_asks_at_most_eight(domain: str, count: int) -> None:
    names = tree_walk_names(domain)
    assert len(names) == count
    assert names[0] == domain and names[-1] == "test"
    assert len(set(names)) == len(names)
    if count == 8:
        assert names[1].count(".") == 6  # the jump to 7 labels


def test_deep_name_inherits_through_the_jump(world: NsdServer, make_session: SessionFactory) -> None:
    """10 labels under org.test: the walk jumps to 7 labels and still reaches _dmarc.org.test."""
    domain = "a.b.c.d.e.f.g.h.org.test"
    report = run_check(make_session, world, domain)
    assert report.location == "org.test"
    assert ids(report) == ["dmarc.inherited"]
    assert len(report.walked) == 8


def test_severities_match_findings_md(world: NsdServer, make_session: SessionFactory) -> None:
    expected = {
        "dmarc.missing": Severity.ERROR,
        "dmarc.multiple": Severity.ERROR,
        "dmarc.syntax": Severity.ERROR,
        "dmarc.policy_none": Severity.WARNING,
        "dmarc.testing": Severity.WARNING,
        "dmarc.subdomain_weaker": Severity.WARNING,
        "dmarc.no_rua": Severity.WARNING,
        "dmarc.rua_unauthorized": Severity.WARNING,
        "dmarc.deprecated_tag": Severity.INFO,
        "dmarc.inherited": Severity.INFO,
    }
    seen = {}
    for domain, *_ in SCENARIOS:
        for found in run_check(make_session, world, domain).findings:
            seen[found.id] = found.severity
    assert seen == expected  # every dmarc.* id is produced by some scenario


# -- the DNS failure matrix ------------------------------------------------------------------------

OUTAGES = ["servfail", "refused", "timeout", "truncate"]


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.parametrize(
    ("domain", "fault_name"),
    [
        ("good.test", "_dmarc.good.test"),  # the record's own name
        ("missing.test", "_dmarc.missing.test"),  # the name has no record: still unknown
        ("mail.org.test", "_dmarc.mail.org.test"),  # the first step of an inheriting walk
        ("mail.org.test", "_dmarc.org.test"),  # the parent that holds the record
        ("sub.missing.test", "_dmarc.missing.test"),  # a parent level with nothing
        ("missing.test", "_dmarc.test"),  # the last step of the walk
        ("a.b.c.d.e.f.g.h.i.j.k.test", "_dmarc.f.g.h.i.j.k.test"),  # the 7-label jump
    ],
)
@pytest.mark.slow
def test_outage_is_temperror_never_missing(
    proxy: FaultProxy, make_session: SessionFactory, domain: str, fault_name: str, kind: str
) -> None:
    proxy.add_fault(fault_name, kind)
    report = run_check(make_session, proxy, domain)
    assert ids(report) == ["dns.temperror"]
    assert report.policy is None and report.record is None
    (temperror,) = report.findings
    assert fault_name in temperror.detail
    assert "missing" not in temperror.title.lower()


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.slow
def test_outage_above_the_record_does_not_matter(
    proxy: FaultProxy, make_session: SessionFactory, kind: str
) -> None:
    """The walk stops at the first record: a failure further up changes nothing."""
    proxy.add_fault("_dmarc.test", kind)
    assert ids(run_check(make_session, proxy, "good.test")) == []
    report = run_check(make_session, proxy, "mail.org.test")
    assert ids(report) == ["dmarc.inherited"]
    assert report.policy == "reject"


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.slow
def test_outage_at_report_authorization_is_temperror(
    proxy: FaultProxy, make_session: SessionFactory, kind: str
) -> None:
    proxy.add_fault("rua-auth.test._report._dmarc.collector.test", kind)
    report = run_check(make_session, proxy, "rua-auth.test")
    assert ids(report) == ["dns.temperror"]
    assert report.policy == "reject"  # the record itself was read


@pytest.mark.parametrize(
    ("domain", "expected_ids"),
    [
        ("good.test", []),
        ("multiple.test", ["dmarc.multiple"]),
        ("none.test", ["dmarc.policy_none"]),
        ("mail.org.test", ["dmarc.inherited"]),
    ],
)
def test_truncated_with_tcp_fallback_works(
    proxy: FaultProxy, make_session: SessionFactory, domain: str, expected_ids: list[str]
) -> None:
    proxy.add_fault("*.test", "truncate_ok")
    report = run_check(make_session, proxy, domain)
    assert ids(report) == expected_ids
    assert proxy.count(transport="tcp") >= 1


@pytest.mark.slow
def test_truncated_large_answer_from_nsd_itself(nsd: NsdServer, make_session: SessionFactory) -> None:
    """Several long TXT strings at _dmarc exceed the UDP payload: NSD truncates, TCP recovers them."""
    noise = [("_dmarc", "TXT", f"token-{i}-" + "x" * 250) for i in range(6)]
    nsd.set_zones(
        {
            "test": make_zone(
                "test",
                [
                    ("_dmarc.big", "TXT", "v=DMARC1; p=reject; rua=mailto:d@big.test"),
                    *(("_dmarc.big", "TXT", value) for _, _, value in noise),
                ],
            )
        }
    )
    report = asyncio.run(check_dmarc(make_session(nsd), "big.test"))
    assert ids(report) == []
    assert report.policy == "reject"


@pytest.mark.slow
def test_recheck_sees_a_fix(nsd: NsdServer, make_session: SessionFactory) -> None:
    """Each check reads DNS afresh (no answer cached across sessions)."""
    nsd.set_zones({"test": make_zone("test", [("_dmarc.fixme", "TXT", "v=DMARC1; p=none")])})
    assert "dmarc.policy_none" in ids(asyncio.run(check_dmarc(make_session(nsd), "fixme.test")))
    nsd.set_zones(
        {"test": make_zone("test", [("_dmarc.fixme", "TXT", "v=DMARC1; p=reject; rua=mailto:d@fixme.test")])}
    )
    assert ids(asyncio.run(check_dmarc(make_session(nsd), "fixme.test"))) == []


def test_unreachable_server_is_temperror(make_session: SessionFactory) -> None:
    from tests.dnstest import free_port

    report = asyncio.run(check_dmarc(make_session(f"127.0.0.1:{free_port()}", timeout=0.2), "good.test"))
    assert ids(report) == ["dns.temperror"]
