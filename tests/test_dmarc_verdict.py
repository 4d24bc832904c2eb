"""evaluate_dmarc against the DMARC verdict tables in tests/data/dmarc-verdict-cases/, with
each case's DNS served by NSD (one zone per top-level domain the case names) behind the fault proxy
(mailauth's {"error": "ETIMEOUT"} answers become dropped queries). Every disagreement is an xfail
with its reason; nothing is skipped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from handlers.dns.psl import registrable_domain
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.domain.dmarc_discovery import organizational_domain, tree_walk, tree_walk_names
from handlers.message.dmarc_verdict import DmarcVerdict, evaluate_dmarc
from handlers.message.parse import MessageError, parse_from
from tests.dnstest import FaultProxy, NsdServer, txt
from tests.messages.helpers import zones
from tests.testdata import TESTDATA

CASES = TESTDATA / "dmarc-verdict-cases"
MAILAUTH = json.loads((CASES / "mailauth_dmarc_cases.json").read_text())
MAIL_DMARC = json.loads((CASES / "mail_dmarc_perl_cases.json").read_text())


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NsdServer, FaultProxy]]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-verdicts"))
    server.start({})
    proxy = FaultProxy((server.host, server.port))
    proxy.start()
    try:
        yield server, proxy
    finally:
        proxy.stop()
        server.stop()


def serve(
    dns: tuple[NsdServer, FaultProxy], records: dict[str, list[tuple[str, str]]], timeouts: Sequence[str] = ()
) -> DnsSession:
    """Serve `records`, drop queries for `timeouts`, and give a fresh session through the proxy."""
    server, proxy = dns
    server.set_zones(zones(records))
    proxy.clear_faults()
    proxy.reset_counts()
    for name in timeouts:
        proxy.add_fault(name, "timeout")
    return DnsSession(nameservers=(parse_nameserver(proxy.address),), timeout=0.8, attempts=1)


def _tld_anchor(records: dict[str, list[tuple[str, str]]], *names: str) -> None:
    """Make sure the zone of every name's TLD is served (so absent names are NXDOMAIN)."""
    for name in names:
        if name:
            records.setdefault(name.rsplit(".", 1)[-1], [])


# -- mailauth ----------------------------------------------------------------------------------

MAILAUTH_XFAIL = {
    "mailauth-028": "evaluate_dmarc takes no ARC result: ARC seals are reported by the message "
    "verdict as cause.forwarded context, not folded into a DMARC comment",
    "mailauth-029": "mailauth's underSized (DKIM l= body-length) tracking has no counterpart: "
    "evaluate_dmarc takes the d= of signatures that verified",
    "mailauth-034": "mailauth's underSized (DKIM l= body-length) tracking has no counterpart "
    "(the pass/strict-alignment parts of this case agree)",
}


def _mailauth_records(call: dict[str, Any]) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    records: dict[str, list[tuple[str, str]]] = {}
    timeouts = []
    for name, types in call["dns"].items():
        entries = records.setdefault(name, [])
        for rdtype, answer in types.items():
            if isinstance(answer, dict) and "error" in answer:
                timeouts.append(name)
                continue
            kind = "TXT" if rdtype == "*" else rdtype
            for item in answer:
                if kind == "TXT":
                    entries.append(("TXT", " ".join(txt(chunk) for chunk in item)))
                elif kind == "MX":
                    entries.append(("MX", f"{item['priority']} {item['exchange']}."))
                else:
                    entries.append((kind, str(item)))
    return records, timeouts


def _domain_of(item: Any) -> str:
    return item if isinstance(item, str) else item["domain"]


def _run_mailauth_call(
    dns: tuple[NsdServer, FaultProxy], call: dict[str, Any]
) -> tuple[DmarcVerdict | None, FaultProxy]:
    header_from = call["header_from"]
    addresses = header_from if isinstance(header_from, list) else [header_from]
    if "@" in addresses[0]:
        try:
            _, _, from_domain = parse_from(", ".join(addresses))
        except MessageError:
            return None, dns[1]  # several authors: no DMARC evaluation (mailauth returns false)
    else:
        from_domain = addresses[0]  # mailauth also takes a bare domain as headerFrom
    dkim = [_domain_of(d) for d in call["dkim_pass_domains"]]
    spf_domains = [_domain_of(d) for d in call["spf_pass_domains"]]
    records, timeouts = _mailauth_records(call)
    _tld_anchor(records, from_domain, *dkim, *spf_domains)
    session = serve(dns, records, timeouts)
    spf = (spf_domains[0], "pass") if spf_domains else None
    return asyncio.run(evaluate_dmarc(session, from_domain, spf, dkim)), dns[1]


def _check_mailauth(
    expect: dict[str, Any], verdict: DmarcVerdict | None, proxy: FaultProxy, call: dict[str, Any]
) -> None:
    field, op, value, negate = expect["field"], expect["op"], expect.get("value"), expect["negate"]
    if field == "(result)" and op == "false":
        assert verdict is None
        return
    assert verdict is not None
    record = verdict.record
    if field == "(result)" and op == "property":
        present = (
            (getattr(verdict, value, None) is not None) if value == "policy" else hasattr(verdict, str(value))
        )
        assert present != negate
        return
    if field.startswith("(dmarc TXT query sequence"):
        names = [f"_dmarc.{n}" for n in tree_walk_names(verdict.from_domain)]
        asked = {q[0] for q in proxy.queries if q[0].startswith("_dmarc.") and q[1] == "TXT"}
        assert names == value and asked == set(value)
        return
    actual: Any
    if field == "status.result":
        actual = verdict.result
    elif field == "policy":
        actual = verdict.policy
    elif field in ("p", "sp"):
        actual = record.tags.get(field) if record else None
    elif field == "pct":
        actual = int(record.tags["pct"]) if record and "pct" in record.tags else None
    elif field == "rr":
        actual = record.raw if record else None
    elif field == "domain":
        actual = verdict.org_domain
    elif field == "status.header.from":
        actual = verdict.from_domain
    elif field == "status.header.d":
        actual = verdict.location
    elif field == "error":
        assert verdict.error is not None and "timeout" in verdict.error
        assert value == "DNS timeout"
        return
    elif field == "info":
        actual = verdict.auth_results()
    elif field in ("alignment.dkim.strict", "alignment.spf.strict"):
        tag = "adkim" if ".dkim." in field else "aspf"
        actual = record is not None and getattr(record, tag) == "s"
    elif field == "alignment.dkim.result":
        actual = next((a.domain for a in verdict.dkim if a.aligned), None)
    elif field == "alignment.spf.result":
        spf = verdict.spf
        actual = spf.domain if spf is not None and spf.aligned else None
        if op == "equal" and spf is not None and spf.aligned and value == spf.org_domain:
            actual = value  # mailauth reports the aligned Organizational Domain here
    else:
        raise AssertionError(f"unmapped mailauth field {field} ({call})")

    if op == "equal":
        assert (actual == value) != negate, (field, actual, value)
    elif op in ("include", "contain"):
        assert (value in actual) != negate, (field, actual, value)
    elif op == "a":
        assert isinstance(actual, str)
    elif op == "true":
        assert actual is True
    elif op == "false":
        assert actual is False
    elif op in ("ok",):
        assert bool(actual) != negate, (field, actual)
    elif op == "undefined":
        assert actual is None
    else:
        raise AssertionError(f"unmapped op {op}")


def _mailauth_params() -> list[Any]:
    params = []
    for case in MAILAUTH["cases"]:
        marks = []
        if case["id"] in MAILAUTH_XFAIL:
            marks.append(pytest.mark.xfail(reason=MAILAUTH_XFAIL[case["id"]], strict=True))
        params.append(
            pytest.param(case, id=case["id"] + ("-rfc9989" if case["skipped_upstream"] else ""), marks=marks)
        )
    return params


@pytest.mark.parametrize("case", _mailauth_params())
@pytest.mark.slow
def test_mailauth_case(dns: tuple[NsdServer, FaultProxy], case: dict[str, Any]) -> None:
    for number, call in enumerate(case["calls"]):
        verdict, proxy = _run_mailauth_call(dns, call)
        for expect in case["expect"]:
            if expect["call"] == number:
                _check_mailauth(expect, verdict, proxy, call)


def test_mailauth_table_is_complete() -> None:
    assert MAILAUTH["count"] == len(MAILAUTH["cases"]) == 63
    assert sum(c["skipped_upstream"] for c in MAILAUTH["cases"]) >= 10


# -- Mail::DMARC -------------------------------------------------------------------------------

MAIL_DMARC_XFAIL = {
    "mdm-validate-psd-y": 'RFC 9989 §4.10.1: the record found by the walk ("v=DMARC1; psd=y") has '
    "no valid p= and no rua=, so no DMARC processing applies (result none); "
    "Mail::DMARC applies it as p=none and reports fail",
    "mdm30-psl-exception": "RFC 9989 replaced the Public Suffix List with the DNS tree walk: with "
    "no DMARC record in the tree the Organizational Domain of bar.www.ck "
    "is the name itself, not the PSL's www.ck",
    "mdm30-whitelist": "a receiver's local policy override (IP whitelist) is not modelled: the "
    "verdict gives the domain's policy (reject), not one receiver's disposition",
}


def _exists_rdata(name: str, rdtype: str, value: str) -> tuple[str, str] | None:
    if rdtype == "NS":
        return None  # a delegation inside our TLD zone would hide the names below it
    if value != "exists":
        return rdtype, value
    return rdtype, {"A": "192.0.2.1", "MX": f"10 mail.{name}."}.get(rdtype, "192.0.2.1")


def _mail_dmarc_records(case: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    records: dict[str, list[tuple[str, str]]] = {}
    dns = case.get("dns")
    if isinstance(dns, str):
        for row in MAIL_DMARC["zones"][dns]:
            records.setdefault(row["name"], []).append((row["type"], row["rdata"]))
    elif isinstance(dns, dict):
        for name, types in dns.items():
            for rdtype, value in types.items():
                entry = _exists_rdata(name, rdtype, value)
                records.setdefault(name, [])
                if entry:
                    records[name].append(entry)
    elif case["kind"] in ("spf_alignment", "dkim_alignment"):
        # Alignment cases give no DNS: publish the policy they name at the From domain's
        # registrable domain, so the tree walk finds an Organizational Domain there.
        record = case.get("policy_record") or "v=DMARC1; p=reject"
        override = case.get("policy_override", {})
        for tag, value in override.items():
            if not value.endswith("(default)"):
                record += f"; {tag}={value}"
        home = registrable_domain(case["header_from"]) or case["header_from"]
        records[f"_dmarc.{home.lower()}"] = [("TXT", record)]
    return records


def _mail_dmarc_params() -> list[Any]:
    params = []
    for case in MAIL_DMARC["verdict_and_alignment_cases"]:
        marks = []
        if case["id"] in MAIL_DMARC_XFAIL:
            marks.append(pytest.mark.xfail(reason=MAIL_DMARC_XFAIL[case["id"]], strict=True))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", _mail_dmarc_params())
@pytest.mark.slow
def test_mail_dmarc_case(dns: tuple[NsdServer, FaultProxy], case: dict[str, Any]) -> None:
    kind, expect = case["kind"], case["expect"]
    records = _mail_dmarc_records(case)
    domain = case.get("domain") or case.get("header_from", "")
    _tld_anchor(
        records,
        domain,
        *(d["domain"] for d in case.get("dkim", [])),
        *(s["domain"] for s in case.get("spf", [])),
    )
    session = serve(dns, records)

    if kind == "organizational_domain":
        org = asyncio.run(organizational_domain(session, domain))
        assert org.name == expect["organizational_domain"]
        return
    if kind == "tree_walk":
        walk = asyncio.run(tree_walk(session, domain))
        found = any(step.dmarc_texts for step in walk.steps)
        if "record_found" in expect:
            assert found == expect["record_found"]
        # Mail::DMARC's walk answers null with no record; RFC 9989 §4.10.2 then names the domain.
        assert walk.organizational_domain().name == (expect["organizational_domain"] or domain)
        return
    if kind == "record_lookup":
        walk = asyncio.run(tree_walk(session, domain))
        assert list(walk.steps[0].dmarc_texts) == expect["records"]
        return

    from_domain = case["header_from"].lower()
    dkim = [d["domain"] for d in case.get("dkim", []) if d.get("result") == "pass"]
    mfrom = [s for s in case.get("spf", []) if s.get("scope", "mfrom") == "mfrom"]
    # One message has one MAIL FROM; a case listing several is evaluated once per MAIL FROM.
    verdicts = [
        asyncio.run(evaluate_dmarc(session, from_domain, (s["domain"], s["result"]), dkim)) for s in mfrom
    ] or [asyncio.run(evaluate_dmarc(session, from_domain, None, dkim))]
    spf_aligned = [v.spf for v in verdicts if v.spf is not None and v.spf.authenticated and v.spf.aligned]
    verdict = next((v for v in verdicts if v.passed), verdicts[0])
    if "spf_aligned" in expect:
        assert bool(spf_aligned) == expect["spf_aligned"]
    if "spf_align" in expect:
        assert spf_aligned and spf_aligned[0].mode == expect["spf_align"]
    if "spf" in expect:
        assert ("pass" if spf_aligned else "fail") == expect["spf"]
    dkim_aligned = [a for a in verdict.dkim if a.aligned]
    if "dkim_aligned" in expect:
        assert bool(dkim_aligned) == expect["dkim_aligned"]
    if "dkim_align" in expect:
        assert dkim_aligned and dkim_aligned[0].mode == expect["dkim_align"]
    if "result" in expect:
        assert verdict.result == expect["result"], verdict.reason
    if "disposition" in expect:
        assert verdict.disposition == expect["disposition"]
    if "published_p" in expect:
        assert verdict.record is not None and verdict.record.effective_policy == expect["published_p"]
    if "author_domain_exists" in case:
        assert verdict.from_exists == case["author_domain_exists"]
    if "reason_type" in expect:
        raise AssertionError("local policy overrides are not modelled")


@pytest.mark.parametrize("case", MAIL_DMARC["from_header_cases"], ids=lambda c: c["raw"][:40])
def test_mail_dmarc_from_header(case: dict[str, Any]) -> None:
    raw = case["raw"]
    value = raw[len("From:") :] if raw.lower().startswith("from:") else raw
    if case["expected_domain"] is None:
        with pytest.raises(MessageError):
            parse_from(value)
    else:
        assert parse_from(value)[2] == case["expected_domain"]


# -- behaviours the tables do not cover --------------------------------------------------------


def test_servfail_on_the_dmarc_lookup_is_temperror(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    nsd.set_zones(zones({"_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")]}))
    fault_proxy.add_fault("_dmarc.example.com", "servfail")
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    verdict = asyncio.run(evaluate_dmarc(session, "example.com", None, ["example.com"]))
    assert verdict.result == "temperror"
    assert verdict.error is not None and "SERVFAIL" in verdict.error
    assert verdict.policy is None


def test_existence_outage_matters_only_when_np_decides(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    nsd.set_zones(
        zones(
            {
                "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; np=none")],
                "_dmarc.other.com": [("TXT", "v=DMARC1; p=reject")],
            }
        )
    )
    fault_proxy.add_fault("sub.example.com", "servfail", "A")
    fault_proxy.add_fault("sub.other.com", "servfail", "A")
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    unknown = asyncio.run(evaluate_dmarc(session, "sub.example.com", None, []))
    assert unknown.result == "temperror" and "np=" in unknown.reason
    known = asyncio.run(evaluate_dmarc(session, "sub.other.com", None, []))
    assert (known.result, known.policy, known.from_exists) == ("fail", "reject", None)


def test_relaxed_alignment_temperror_when_the_org_walk_fails(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    nsd.set_zones(zones({"_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")]}))
    fault_proxy.add_fault("_dmarc.mail.example.com", "servfail")
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    verdict = asyncio.run(evaluate_dmarc(session, "example.com", None, ["mail.example.com"]))
    assert verdict.result == "temperror"
    assert verdict.dkim[0].aligned is None


def test_a_failed_lookup_for_an_unrelated_org_domain_does_not_hide_a_certain_fail(
    nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    """Mail through a list: SPF passes for lists.example.net, which can never share an
    Organizational Domain with good.test, so the failed _dmarc.net lookup cannot change the fail."""
    nsd.set_zones(
        zones(
            {
                "_dmarc.good.test": [("TXT", "v=DMARC1; p=reject")],
                "_dmarc.example.net": [("TXT", "v=DMARC1; p=none")],
            }
        )
    )
    fault_proxy.add_fault("_dmarc.net", "servfail")
    fault_proxy.add_fault("_dmarc.lists.example.net", "servfail")
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    verdict = asyncio.run(
        evaluate_dmarc(session, "good.test", ("lists.example.net", "pass"), ["lists.example.net"])
    )
    assert verdict.result == "fail", verdict.reason
    assert verdict.spf is not None and verdict.spf.aligned is False
    assert [a.aligned for a in verdict.dkim] == [False]
    # a lookup whose answer could change the result still makes it temperror
    fault_proxy.add_fault("_dmarc.mail.good.test", "servfail")
    related = asyncio.run(evaluate_dmarc(session, "good.test", None, ["lists.example.net", "mail.good.test"]))
    assert related.result == "temperror" and "mail.good.test" in related.reason
