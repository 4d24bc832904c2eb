"""The fix generators: DMARC from choices, SPF merge/all/add/flatten, DKIM t=y and keys.

Every generated DMARC and SPF record is judged by our parser and by checkdmarc's, resolving through
a real NSD (`fixit_zones`), never the internet. Flattening and lookup counts are measured against
the same server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.dns.dns_entry import CLASSIC_UDP_LIMIT, MAX_STRING_BYTES
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.domain.dkim_keys import parse_key_record
from handlers.domain.dmarc_record import parse_dmarc_record
from handlers.domain.spf import parse_spf_record
from handlers.fixes.dkim_fixes import (
    DkimKeyChoices,
    parse_public_key_input,
    propose_dkim_key,
    propose_dkim_testing,
    remove_testing_flag,
)
from handlers.fixes.records import (
    FIX_KINDS,
    DmarcChoices,
    FixInputError,
    build_dmarc_record,
    dmarc_choices_from,
    initial_dmarc_choices,
    next_policy_step,
    normalise_value,
    parse_rua_input,
    propose_dmarc,
)
from handlers.fixes.session import prepare_fix
from handlers.fixes.spf_fixes import (
    SpfChoices,
    build_spf_record,
    count_lookups,
    flatten_include,
    merge_spf_records,
    parse_extra_terms,
    propose_spf,
)
from handlers.fixes.validation import dmarc_record_problems, spf_record_problems
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.keys import rsa_public_key

BIG_INCLUDES = 11


def fixit_zones() -> dict[str, str]:
    """The test world of the fix-it tests: one domain per fixable finding, and stand-ins for the
    providers' include and DKIM names, all on loopback."""
    key2048, key1024 = rsa_public_key(2048), rsa_public_key(1024)
    test = [
        # dmarc.policy_none (and progression), with senders known from SPF and DKIM
        ("pnone", "TXT", "v=spf1 include:_spf.google.com ~all"),
        ("_dmarc.pnone", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@pnone.test"),
        ("google._domainkey.pnone", "TXT", f"v=DKIM1; k=rsa; p={key2048}"),
        ("pnone", "MX", "10 mx.pnone.test."),
        ("mx.pnone", "A", "192.0.2.25"),
        # dmarc.missing
        ("nodmarc", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        # dmarc.syntax
        ("syntax", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.syntax", "TXT", "v=DMARC1; p=block; rua=dmarc@syntax.test"),
        # dmarc.multiple
        ("dup", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.dup", "TXT", "v=DMARC1; p=quarantine; rua=mailto:a@dup.test"),
        ("_dmarc.dup", "TXT", "v=DMARC1; p=none; rua=mailto:b@dup.test"),
        # dmarc.no_rua
        ("norua", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.norua", "TXT", "v=DMARC1; p=reject"),
        # dmarc.deprecated_tag
        ("deprec", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.deprec", "TXT", "v=DMARC1; p=reject; pct=50; ri=3600; rua=mailto:d@deprec.test"),
        # dmarc.testing
        ("tmode", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.tmode", "TXT", "v=DMARC1; p=quarantine; t=y; rua=mailto:d@tmode.test"),
        # spf.missing
        ("_dmarc.nospf", "TXT", "v=DMARC1; p=reject; rua=mailto:d@nospf.test"),
        ("nospf", "TXT", "google-site-verification=abc"),
        # spf.multiple
        ("twospf", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("twospf", "TXT", "v=spf1 include:_spf.google.com ~all"),
        ("_dmarc.twospf", "TXT", "v=DMARC1; p=reject; rua=mailto:d@twospf.test"),
        # spf.pass_all
        ("passall", "TXT", "v=spf1 ip4:192.0.2.1 +all"),
        ("_dmarc.passall", "TXT", "v=DMARC1; p=reject; rua=mailto:d@passall.test"),
        # spf.too_many_lookups: eleven includes, each with one network
        ("big", "TXT", "v=spf1 " + " ".join(f"include:i{i}.big.test" for i in range(BIG_INCLUDES)) + " -all"),
        ("_dmarc.big", "TXT", "v=DMARC1; p=reject; rua=mailto:d@big.test"),
        *[
            (f"i{i}.big", "TXT", f"v=spf1 ip4:198.51.100.{i} ip6:2001:db8::{i:x} -all")
            for i in range(BIG_INCLUDES)
        ],
        # an include that cannot be flattened exactly
        ("exists.big", "TXT", "v=spf1 exists:%{i}.rbl.big.test -all"),
        ("mxinc.big", "TXT", "v=spf1 mx:mxhost.big.test -all"),
        ("mxhost.big", "MX", "10 out.big.test."),
        ("out.big", "A", "203.0.113.5"),
        # dkim.testing and dkim.weak_key
        ("dkimt", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.dkimt", "TXT", "v=DMARC1; p=reject; rua=mailto:d@dkimt.test"),
        ("sel._domainkey.dkimt", "TXT", f"v=DKIM1; k=rsa; t=y; p={key2048}"),
        ("weak", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.weak", "TXT", "v=DMARC1; p=reject; rua=mailto:d@weak.test"),
        ("k2._domainkey.weak", "TXT", f"v=DKIM1; k=rsa; p={key1024}"),
    ]
    return {
        "test": make_zone("test", test),
        "google.com": make_zone(
            "google.com", [("_spf", "TXT", "v=spf1 ip4:172.217.0.0/19 ip6:2001:4860:4000::/36 ~all")]
        ),
        "sendgrid.net": make_zone("sendgrid.net", [("@", "TXT", "v=spf1 ip4:167.89.0.0/17 ~all")]),
        "mcsv.net": make_zone(
            "mcsv.net",
            [
                ("dkim2", "TXT", f"v=DKIM1; k=rsa; p={key2048}"),
                ("dkim3", "TXT", f"v=DKIM1; k=rsa; p={key2048}"),
            ],
        ),
    }


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(fixit_zones())
    return nsd


def session_for(server: NsdServer) -> DnsSession:
    return DnsSession(nameservers=(parse_nameserver(server.address),), timeout=0.5, attempts=1)


def both_parsers_accept(record: str, domain: str, server: NsdServer) -> Sequence[str]:
    check = dmarc_record_problems if record.startswith("v=DMARC1") else spf_record_problems
    return check(record, domain, (parse_nameserver(server.address),), 0.5)


# -- DMARC ----------------------------------------------------------------------------------------

DMARC_CASES = [
    ("dmarc.missing", "nodmarc.test", [], "v=DMARC1; p=none; rua=mailto:dmarc-reports@nodmarc.test"),
    ("dmarc.syntax", "syntax.test", ["v=DMARC1; p=block; rua=dmarc@syntax.test"], "v=DMARC1; p=none"),
    (
        "dmarc.multiple",
        "dup.test",
        ["v=DMARC1; p=quarantine; rua=mailto:a@dup.test", "v=DMARC1; p=none; rua=mailto:b@dup.test"],
        "v=DMARC1; p=none; rua=mailto:a@dup.test,mailto:b@dup.test",
    ),
    (
        "dmarc.no_rua",
        "norua.test",
        ["v=DMARC1; p=reject"],
        "v=DMARC1; p=reject; rua=mailto:dmarc-reports@norua.test",
    ),
    (
        "dmarc.deprecated_tag",
        "deprec.test",
        ["v=DMARC1; p=reject; pct=50; ri=3600; rua=mailto:d@deprec.test"],
        "v=DMARC1; p=reject; rua=mailto:d@deprec.test",
    ),
    (
        "dmarc.policy_none",
        "pnone.test",
        ["v=DMARC1; p=none; rua=mailto:dmarc@pnone.test"],
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@pnone.test",
    ),
    (
        "dmarc.testing",
        "tmode.test",
        ["v=DMARC1; p=quarantine; t=y; rua=mailto:d@tmode.test"],
        "v=DMARC1; p=quarantine; rua=mailto:d@tmode.test",
    ),
    ("dmarc.subdomain_weaker", "pnone.test", ["v=DMARC1; p=reject; sp=none; np=none"], "v=DMARC1; p=reject"),
    (
        "dmarc.rua_unauthorized",
        "pnone.test",
        ["v=DMARC1; p=reject; rua=mailto:r@other.example"],
        "v=DMARC1; p=reject; rua=mailto:dmarc-reports@pnone.test",
    ),
]


@pytest.mark.parametrize(("finding_id", "domain", "before", "expected"), DMARC_CASES)
@pytest.mark.slow
def test_every_dmarc_fix_is_valid_for_both_parsers(
    world: NsdServer, finding_id: str, domain: str, before: list[str], expected: str
) -> None:
    choices = initial_dmarc_choices(finding_id, before, domain)
    proposal = propose_dmarc(domain, domain, before, choices, (finding_id,))
    [entry] = proposal.entries
    assert entry.value == expected
    assert entry.host == f"_dmarc.{domain}" and entry.rdtype == "TXT"
    assert both_parsers_accept(entry.value, domain, world) == ()
    assert parse_dmarc_record(entry.value).problems == ()
    if len(before) > 1:
        assert proposal.delete == tuple(before[1:])


def test_syntax_fix_names_what_it_fixed() -> None:
    choices = dmarc_choices_from(["v=DMARC1; p=block; rua=dmarc@syntax.test"], "syntax.test")
    assert any("p=block is not a policy" in n for n in choices.notes)
    assert any("rua entry “dmarc@syntax.test”" in n for n in choices.notes)


def test_pct_zero_becomes_test_mode() -> None:
    choices = dmarc_choices_from(["v=DMARC1; p=reject; pct=0"], "x.test")
    assert build_dmarc_record(choices) == "v=DMARC1; p=reject; t=y"


def test_every_choice_combination_parses(world: NsdServer) -> None:
    for policy in ("none", "quarantine", "reject"):
        for sub in (None, "none", "reject"):
            choices = DmarcChoices(
                policy=policy,
                sp=sub,
                np=sub,
                adkim="s",
                aspf="s",
                testing=policy != "none",
                rua=("mailto:a@pnone.test", "mailto:b@pnone.test"),
            )
            record = build_dmarc_record(choices)
            assert both_parsers_accept(record, "pnone.test", world) == (), record


def test_checkdmarc_objection_is_reported(world: NsdServer) -> None:
    problems = both_parsers_accept("v=DMARC1; p=reject; adkim=x; fo=9", "pnone.test", world)
    assert any(p.startswith("checkdmarc:") for p in problems)


@pytest.mark.parametrize(
    ("start", "via_test", "steps"),
    [
        ("none", False, ["quarantine", "reject", "reject"]),
        ("none", True, ["quarantine t=y", "quarantine", "reject t=y", "reject"]),
    ],
)
def test_policy_progression(start: str, via_test: bool, steps: list[str]) -> None:
    choices = DmarcChoices(policy=start)
    seen = []
    for _ in steps:
        choices = next_policy_step(choices, via_test)
        seen.append(choices.policy + (" t=y" if choices.testing else ""))
    assert seen == steps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("mailto:dmarc-reports@x.test",)),
        ("a@x.test", ("mailto:a@x.test",)),
        ("mailto:a@x.test, b@collector.example", ("mailto:a@x.test", "mailto:b@collector.example")),
    ],
)
def test_rua_input(text: str, expected: tuple[str, ...]) -> None:
    assert parse_rua_input(text, "x.test") == expected


@pytest.mark.parametrize("text", ["not-an-address", "https://x.test/reports", "a@b", "a@x.test " * 5])
def test_rua_input_refused_with_what_would_be_right(text: str) -> None:
    with pytest.raises(FixInputError) as raised:
        parse_rua_input(text, "x.test")
    assert raised.value.field == "rua"
    assert "dmarc-reports@x.test" in raised.value.message or "At most" in raised.value.message


def test_normalised_values_ignore_spacing() -> None:
    assert normalise_value("TXT", "v=DMARC1;p=reject ;rua = mailto:a@b.c;") == normalise_value(
        "TXT", "v=DMARC1; p=reject; rua=mailto:a@b.c"
    )
    assert normalise_value("TXT", "v=spf1  IP4:1.2.3.4 -all") == "v=spf1 ip4:1.2.3.4 -all"


def test_every_fixable_id_is_in_the_catalog() -> None:
    from handlers.domain.findings import CATALOG

    assert set(FIX_KINDS) <= set(CATALOG)


# -- SPF ------------------------------------------------------------------------------------------


def test_merge_keeps_every_sender_once_and_the_strictest_all() -> None:
    merged = merge_spf_records(
        ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 include:_spf.google.com ip4:192.0.2.1 ptr ~all"]
    )
    assert merged.terms == ("ip4:192.0.2.1", "include:_spf.google.com")
    assert merged.all_qualifier == "-"
    assert any("ptr is deprecated" in n for n in merged.notes)
    record = build_spf_record(merged, SpfChoices(all_qualifier="-"), {})
    assert record == "v=spf1 ip4:192.0.2.1 include:_spf.google.com -all"


def test_pass_all_is_replaced() -> None:
    merged = merge_spf_records(["v=spf1 ip4:192.0.2.1 +all"])
    assert build_spf_record(merged, SpfChoices(all_qualifier="~"), {}) == "v=spf1 ip4:192.0.2.1 ~all"


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("include:_spf.example.net", ("include:_spf.example.net",)),
        ("192.0.2.7 198.51.100.0/24", ("ip4:192.0.2.7", "ip4:198.51.100.0/24")),
        ("2001:db8::/32", ("ip6:2001:db8::/32",)),
        ("mail.example.net, ip4:192.0.2.9", ("include:mail.example.net", "ip4:192.0.2.9")),
    ],
)
def test_free_form_terms(text: str, terms: tuple[str, ...]) -> None:
    assert parse_extra_terms(text) == terms


@pytest.mark.parametrize(
    "text", ["ip4:300.1.1.1", "include:", "+all", "redirect=x.example", "-ip4:192.0.2.1", "hello world!"]
)
def test_free_form_terms_refused(text: str) -> None:
    with pytest.raises(FixInputError) as raised:
        parse_extra_terms(text)
    assert raised.value.field == "terms"


def test_flattening_counts_and_networks(world: NsdServer) -> None:
    session = session_for(world)
    flat = asyncio.run(flatten_include(session, "i3.big.test"))
    assert flat.problem is None
    assert flat.terms == ("ip4:198.51.100.3", "ip6:2001:db8::3")
    assert flat.lookups_saved == 1
    mx = asyncio.run(flatten_include(session, "mxinc.big.test"))
    assert mx.terms == ("ip4:203.0.113.5",) and mx.lookups_saved == 2
    refused = asyncio.run(flatten_include(session, "exists.big.test"))
    assert refused.problem is not None and "depends on the message" in refused.problem


def test_flattening_brings_eleven_lookups_under_the_limit(world: NsdServer) -> None:
    session = session_for(world)
    records = [f"v=spf1 {' '.join(f'include:i{i}.big.test' for i in range(BIG_INCLUDES))} -all"]
    before = asyncio.run(count_lookups(session, records[0]))
    assert before == (11, ())
    proposal = asyncio.run(
        propose_spf(
            session,
            "big.test",
            records,
            SpfChoices(flatten=("i0.big.test",), all_qualifier="-"),
            ("spf.too_many_lookups",),
        )
    )
    assert proposal.problems == ()
    [entry] = proposal.entries
    assert "include:i0.big.test" not in entry.value
    assert "ip4:198.51.100.0 ip6:2001:db8::" in entry.value
    assert asyncio.run(count_lookups(session_for(world), entry.value)) == (10, ())
    assert proposal.watch_includes == ("i0.big.test",)
    assert any("re-flatten" in n for n in proposal.notes)
    assert both_parsers_accept(entry.value, "big.test", world) == ()


def test_not_flattening_enough_is_not_offered(world: NsdServer) -> None:
    records = [f"v=spf1 {' '.join(f'include:i{i}.big.test' for i in range(BIG_INCLUDES))} -all"]
    proposal = asyncio.run(
        propose_spf(session_for(world), "big.test", records, SpfChoices(all_qualifier="-"), ())
    )
    assert not proposal.offered
    assert any("11 DNS lookups" in p for p in proposal.problems)
    assert both_parsers_accept(proposal.entries[0].value, "big.test", world)  # checkdmarc too


def test_adding_a_catalog_sender(world: NsdServer) -> None:
    proposal = asyncio.run(
        propose_spf(
            session_for(world),
            "nodmarc.test",
            ["v=spf1 ip4:192.0.2.1 -all"],
            SpfChoices(add_providers=("google", "sendgrid"), all_qualifier="-"),
            (),
        )
    )
    assert (
        proposal.entries[0].value == "v=spf1 ip4:192.0.2.1 include:_spf.google.com include:sendgrid.net -all"
    )
    assert proposal.problems == ()
    assert both_parsers_accept(proposal.entries[0].value, "nodmarc.test", world) == ()


def test_a_long_record_is_split_and_its_answer_size_is_stated(world: NsdServer) -> None:
    many = " ".join(f"ip4:198.51.{i}.0/24" for i in range(0, 120, 2))
    records = [f"v=spf1 {many} -all"]
    proposal = asyncio.run(
        propose_spf(
            session_for(world),
            "nodmarc.test",
            records,
            SpfChoices(all_qualifier="-"),
            (),
            other_txt=["google-site-verification=" + "x" * 40],
        )
    )
    [entry] = proposal.entries
    assert len(entry.strings) >= 3
    assert all(len(s.encode()) <= MAX_STRING_BYTES for s in entry.strings)
    assert any(f"over {CLASSIC_UDP_LIMIT}" in n and "cannot be made smaller" in n for n in proposal.notes)
    assert parse_spf_record(entry.value)
    assert both_parsers_accept(entry.value, "nodmarc.test", world) == ()


def test_a_short_record_has_no_size_note(world: NsdServer) -> None:
    proposal = asyncio.run(
        propose_spf(session_for(world), "nodmarc.test", ["v=spf1 ip4:192.0.2.1 -all"], SpfChoices(), ())
    )
    assert not any("bytes" in n for n in proposal.notes)


def test_an_include_without_a_record_is_not_offered(world: NsdServer) -> None:
    proposal = asyncio.run(
        propose_spf(
            session_for(world), "nodmarc.test", ["v=spf1 include:nothing.big.test -all"], SpfChoices(), ()
        )
    )
    assert not proposal.offered


# -- DKIM -----------------------------------------------------------------------------------------


def test_remove_testing_flag_keeps_the_rest() -> None:
    assert remove_testing_flag("v=DKIM1; k=rsa; t=y; p=ABC") == "v=DKIM1; k=rsa; p=ABC"
    assert remove_testing_flag("v=DKIM1; t=y:s; p=ABC") == "v=DKIM1; t=s; p=ABC"


def test_testing_proposal_is_a_valid_key_without_t() -> None:
    record = f"v=DKIM1; k=rsa; t=y; p={rsa_public_key(2048)}"
    proposal = propose_dkim_testing("dkimt.test", "sel", record, ("dkim.testing",))
    [entry] = proposal.entries
    key = parse_key_record("sel", entry.host, entry.value)
    assert entry.host == "sel._domainkey.dkimt.test"
    assert not key.testing and key.problems == () and key.key_bits == 2048
    assert proposal.offered


def test_public_key_input_forms() -> None:
    b64 = rsa_public_key(2048)
    assert parse_public_key_input(b64) == f"v=DKIM1; k=rsa; p={b64}"
    assert parse_public_key_input(f'"v=DKIM1; k=rsa; p={b64}"') == f"v=DKIM1; k=rsa; p={b64}"
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        + "\n-----END PUBLIC KEY-----"
    )
    assert parse_public_key_input(pem) == f"v=DKIM1; k=rsa; p={b64}"


def test_a_private_key_is_refused_and_never_echoed() -> None:
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    with pytest.raises(FixInputError) as raised:
        parse_public_key_input(private)
    assert "private key" in raised.value.message
    assert private.splitlines()[1] not in raised.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (rsa_public_key(1024), "1024-bit RSA key"),
        ("v=DKIM1; k=rsa; p=", "revokes"),
        ("v=DKIM1; k=rsa; p=not!base64", "not valid base64"),
    ],
)
def test_weak_or_broken_keys_are_refused(text: str, words: str) -> None:
    with pytest.raises(FixInputError) as raised:
        parse_public_key_input(text)
    assert words in raised.value.message and raised.value.field == "key"


def test_cname_provider_gives_exact_entries_and_no_key() -> None:
    proposal = propose_dkim_key("weak.test", DkimKeyChoices("mailchimp", "k2"), (), ("dkim.weak_key",))
    assert [(e.host, e.rdtype, e.value) for e in proposal.entries] == [
        ("k2._domainkey.weak.test", "CNAME", "dkim2.mcsv.net"),
        ("k3._domainkey.weak.test", "CNAME", "dkim3.mcsv.net"),
    ]
    assert "Mailchimp" in proposal.steps or "k2._domainkey" in proposal.steps


def test_account_specific_provider_gives_steps_only() -> None:
    proposal = propose_dkim_key("weak.test", DkimKeyChoices("microsoft", "selector1"), (), ())
    assert proposal.entries == () and "Defender portal" in proposal.steps
    assert proposal.offered


@pytest.mark.parametrize(
    ("finding_id", "failing", "rdtype"),
    [
        ("dmarc.policy_none", "_dmarc.pnone.test", "TXT"),
        ("spf.neutral_all", "pnone.test", "TXT"),
    ],
)
def test_no_proposal_over_a_record_that_could_not_be_read(
    nsd: NsdServer, fault_proxy: FaultProxy, finding_id: str, failing: str, rdtype: str
) -> None:
    """An outage is not an absence: the fix must not propose a record in place of one it could
    not read (it would overwrite what nobody saw)."""
    nsd.set_zones(fixit_zones())
    fault_proxy.add_fault(failing, "servfail", rdtype)
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    screen = asyncio.run(prepare_fix(session, finding_id, "pnone.test"))
    assert not screen.proposal.offered
    assert any("could not be read" in p and "SERVFAIL" in p for p in screen.proposal.problems)
