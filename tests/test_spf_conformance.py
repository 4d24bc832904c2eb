"""The OpenSPF RFC 7208 and RFC 4408 suites and pyspf's own test.yml, served by NSD, evaluated
through `evaluate_spf`.

Each scenario's zonedata becomes one root zone (origin "."), so every name the scenario lists is
served exactly as written and every other name is NXDOMAIN, as the suite requires. Scenarios
reuse the same names with different data, so the module's NSD is reloaded when the scenario
changes (the parameters are grouped by scenario). `TIMEOUT` follows pyspf's own test driver: a
query times out when the name lists no record of the asked type before `TIMEOUT`; here that is a
fault-proxy `timeout` fault per (name, type). SPF-type records are served as type SPF and copied to
TXT unless the name has an explicit TXT entry (`TXT: NONE` included).

Non-ASCII text in the suite's YAML (`"\\xEF"`) stands for single bytes: it is written to the
zone byte for byte (Latin-1), which is what the suite's authors meant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name
import pytest
import spf
import yaml

from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.message.spf_eval import SpfVerdict, evaluate_spf
from tests.dnstest import FaultProxy, NsdServer
from tests.testdata import TESTDATA

SUITE_DIR = TESTDATA / "spf-rfc7208-pyspf"
SUITES = ("rfc7208-tests.yml", "rfc4408-tests.yml", "test.yml")
QTYPES = ("A", "AAAA", "MX", "PTR", "TXT", "SPF")
MAX_STRING = 255


@dataclass(frozen=True)
class Scenario:
    key: str  # "<suite>#<index>"
    description: str
    zone: str  # root zone text
    timeouts: tuple[tuple[str, str | None], ...]  # (name, qtype or None for every type)


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    name: str
    helo: str
    host: str
    mailfrom: str
    results: tuple[str, ...]
    explanation: str | None


def _quote(data: bytes) -> str:
    out = []
    for byte in data:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _bytes(text: str) -> bytes:
    # YAML "\xEF" gives U+00EF: the suite means the byte 0xEF (see the module docstring).
    return b"".join(ch.encode("latin-1") if ord(ch) < 256 else ch.encode("utf-8") for ch in text)


def _txt_rdata(value: Any) -> str:
    chunks = [value] if isinstance(value, str) else list(value)
    if not chunks:
        # `SPF: []` is a TXT record with no strings, which a zone file cannot express; the
        # closest NSD can hold is one empty string, which is equally not an SPF record.
        return '""'
    parts = []
    for chunk in chunks:
        data = _bytes(str(chunk))
        parts += [_quote(data[i : i + MAX_STRING]) for i in range(0, max(len(data), 1), MAX_STRING)]
    return " ".join(parts)


def _absolute(name: str) -> str:
    return dns.name.from_text(str(name).strip() or ".").to_text()


def _scenario(key: str, doc: dict[str, Any]) -> Scenario:
    lines = [
        "$ORIGIN .",
        "$TTL 300",
        ". IN SOA ns.root.test. hostmaster.root.test. 1 3600 900 604800 300",
        ". IN NS ns.root.test.",
        "ns.root.test. IN A 127.0.0.1",
    ]
    timeouts: list[tuple[str, str | None]] = []
    for owner_text, entries in (doc.get("zonedata") or {}).items():
        owner = _absolute(owner_text)
        explicit_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        seen_types: set[str] = set()
        for entry in entries:
            if entry == "TIMEOUT":
                # pyspf's driver: a type with no record listed before TIMEOUT times out.
                missing = [t for t in QTYPES if t not in seen_types]
                if not seen_types:
                    timeouts.append((owner.rstrip("."), None))
                else:
                    timeouts += [(owner.rstrip("."), t) for t in missing]
                break
            ((rdtype, value),) = entry.items()
            if value == "NONE":
                continue  # the driver yields nothing for it: the name has no record of the type
            seen_types.add(rdtype)
            if rdtype == "SPF" and not explicit_txt:
                seen_types.add("TXT")
            if rdtype in ("TXT", "SPF"):
                rdata = _txt_rdata(value)
                lines.append(f"{owner} IN {rdtype} {rdata}")
                if rdtype == "SPF" and not explicit_txt:
                    lines.append(f"{owner} IN TXT {rdata}")
            elif rdtype == "MX":
                preference, host = value
                lines.append(f"{owner} IN MX {int(preference)} {_absolute(host)}")
            elif rdtype in ("PTR", "CNAME"):
                lines.append(f"{owner} IN {rdtype} {_absolute(value)}")
            else:
                lines.append(f"{owner} IN {rdtype} {value}")
    return Scenario(key, str(doc.get("description", "")), "\n".join(lines) + "\n", tuple(timeouts))


def load_cases() -> Iterator[Case]:
    for suite in SUITES:
        with open(SUITE_DIR / suite, "rb") as stream:
            # libyaml's safe loader when PyYAML has it: the same documents, parsed about 5 times faster,
            # and every parallel test worker loads the suites again to collect the cases
            docs = list(yaml.load_all(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        for index, doc in enumerate(docs):
            scenario = _scenario(f"{suite}#{index}", doc)
            for name, test in doc["tests"].items():
                result = test["result"]
                results = tuple(result) if isinstance(result, list) else (result,)
                yield Case(
                    scenario,
                    f"{suite.split('-')[0]}:{name}",
                    str(test.get("helo", "")),
                    str(test["host"]),
                    str(test.get("mailfrom", "")),
                    results,
                    test.get("explanation"),
                )


# Cases this project cannot pass, each with the reason. `strict=True`: a fix that makes one pass
# fails the run until the entry is removed.
KNOWN_FAILURES: dict[str, str] = {
    "test.yml:default-modifier": (
        "pyspf's own test.yml, lax mode (strict=0): the pre-RFC `default=` modifier is honoured only "
        "there; RFC 7208 §6 ignores unknown modifiers, and evaluate_spf runs pyspf in RFC mode"
    ),
    "test.yml:default-modifier-harsh": (
        "pyspf's own test.yml, harsh mode (strict=2): `ambiguous` is a pyspf-only diagnostic, not an "
        "RFC 7208 result; evaluate_spf runs pyspf in RFC mode"
    ),
}


def _params() -> list[Any]:
    params = []
    for case in load_cases():
        reason = KNOWN_FAILURES.get(case.name)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


class SuiteDns:
    """One NSD behind one fault proxy, holding the zone of the scenario under test."""

    def __init__(self, workdir: Path) -> None:
        self.nsd = NsdServer(workdir)
        self.proxy: FaultProxy | None = None
        self.current: str | None = None

    def start(self) -> None:
        self.nsd.start({})
        self.proxy = FaultProxy((self.nsd.host, self.nsd.port)).start()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.nsd.stop()

    def serve(self, scenario: Scenario) -> None:
        assert self.proxy is not None
        if self.current == scenario.key:
            return
        self.nsd.set_zones({".": scenario.zone})
        self.proxy.clear_faults()
        for name, qtype in scenario.timeouts:
            self.proxy.add_fault(name, "timeout", qtype)
        self.current = scenario.key

    def session(self) -> DnsSession:
        assert self.proxy is not None
        # Short timeouts so the few TIMEOUT cases cost under a second each, yet long enough that a loaded
        # machine (parallel workers) answering late is not read as a timeout.
        return DnsSession(nameservers=(parse_nameserver(self.proxy.address),), timeout=0.8, attempts=1)


@pytest.fixture(scope="module")
def suite_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteDns]:
    server = SuiteDns(tmp_path_factory.mktemp("spf-suite"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("case", _params())
@pytest.mark.slow
def test_rfc_suite(case: Case, suite_dns: SuiteDns) -> None:
    suite_dns.serve(case.scenario)
    verdict: SpfVerdict = asyncio.run(evaluate_spf(suite_dns.session(), case.host, case.mailfrom, case.helo))
    assert verdict.result in case.results, (
        f"{case.name}: got {verdict.result} ({verdict.explanation!r}), expected {case.results}"
    )
    if case.explanation is not None:
        if case.explanation == "DEFAULT":
            # pyspf's driver sets its default explanation to "DEFAULT"; ours is pyspf's own.
            assert verdict.explanation == spf.EXPLANATIONS[verdict.result]
        else:
            assert verdict.explanation == case.explanation


def _one_record_root(record: str) -> str:
    return (
        "$ORIGIN .\n$TTL 300\n. IN SOA ns.root.test. hostmaster.root.test. 1 3600 900 604800 300\n"
        f". IN NS ns.root.test.\nns.root.test. IN A 127.0.0.1\nsender.test. IN TXT {_txt_rdata(record)}\n"
    )


@pytest.mark.slow
def test_concurrent_evaluations_use_their_own_sessions(nsd: NsdServer, tmp_path: Path) -> None:
    """Two evaluations at once, each through its own session and server, never see the other's
    answers (the hook reads the session from a ContextVar, not a global)."""
    nsd.set_zones({".": _one_record_root("v=spf1 ip4:192.0.2.1 -all")})
    with NsdServer(tmp_path / "other") as other:
        other.set_zones({".": _one_record_root("v=spf1 ?all")})

        async def both() -> list[SpfVerdict]:
            sessions = [
                DnsSession(nameservers=(parse_nameserver(s.address),), timeout=0.5, attempts=1)
                for s in (nsd, other) * 4
            ]
            return list(
                await asyncio.gather(
                    *(evaluate_spf(s, "192.0.2.1", "a@sender.test", "mx.sender.test") for s in sessions)
                )
            )

        verdicts = asyncio.run(both())
    assert [v.result for v in verdicts] == ["pass", "neutral"] * 4
    assert verdicts[0].domain == "sender.test" and verdicts[0].identity == "mailfrom"


def test_outage_is_temperror(fault_proxy: FaultProxy, nsd: NsdServer) -> None:
    nsd.set_zones({".": _one_record_root("v=spf1 -all")})
    fault_proxy.add_fault("sender.test", "servfail", "TXT")
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.5, attempts=1)
    verdict = asyncio.run(evaluate_spf(session, "192.0.2.1", "", "sender.test"))
    assert (verdict.result, verdict.domain, verdict.identity) == ("temperror", "sender.test", "helo")
    assert "SERVFAIL" in verdict.explanation


def test_invalid_ip_is_permerror(nsd: NsdServer) -> None:
    session = DnsSession(nameservers=(parse_nameserver(nsd.address),), timeout=0.5, attempts=1)
    verdict = asyncio.run(evaluate_spf(session, "not-an-ip", "a@sender.test", "x.test"))
    assert verdict.result == "permerror"


@pytest.mark.slow
def test_suites_are_all_loaded() -> None:
    """Every suite loads completely: 203 RFC 7208, 191 RFC 4408 and pyspf's 16 own cases."""
    names = [case.name for case in load_cases()]
    assert sum(n.startswith("rfc7208:") for n in names) == 203
    assert sum(n.startswith("rfc4408:") for n in names) == 191
    assert sum(n.startswith("test.yml:") for n in names) == 16
    assert len(set(names)) == len(names)


@pytest.mark.slow
def test_unknown_failures_are_known() -> None:
    """Every KNOWN_FAILURES entry names a real case."""
    names = {case.name for case in load_cases()}
    assert set(KNOWN_FAILURES) <= names
