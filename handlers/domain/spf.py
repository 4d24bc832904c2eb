"""The SPF record check behind `dmarcbot check`: parse the record, expand it, count what RFC 7208 limits.

Parsing follows the ABNF of RFC 7208 §12 (terms §4.6.1, macros §7). The check then expands every
`include:` and `redirect=` level by level, fetching all targets of one level at once, so the wall
time follows the depth of the include tree, not the number of lookups.

Without a connecting IP nothing can be *evaluated*; what a record check can say is whether every
evaluation of this record will run into a permerror or temperror: too many DNS-querying terms
(§4.6.4), too many void lookups (§4.6.4), an `mx` with more than 10 hosts (§4.6.4), a missing
include or redirect target (§5.2, §6.1), a loop. Terms carrying macros (§7) depend on the message
and cannot be resolved here: they are counted but not looked up.

An outage (SERVFAIL, REFUSED, timeout) anywhere gives `dns.temperror`, never a `*.missing`
finding: the trap to avoid is reporting an outage as "record removed".
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.exception

from handlers.dns.resolver import DnsSession, DnsStatus, Lookup, normalise_name
from handlers.dns.wire import encode_name
from handlers.domain.findings import Finding, cname_loop_finding, finding
from handlers.errors import DmarcbotError

# RFC 7208 §4.6.4: at most 10 terms that cause DNS queries per evaluation, at most 2 void lookups,
# and an `mx` (or `ptr`) term may not use more than 10 names.
MAX_DNS_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_HOSTS = 10
# A record tree wider than this is far past 10 lookups already (each node costs at least one
# lookup); stop expanding rather than follow a hostile fan-out. The count is then a lower bound.
MAX_EXPANDED_RECORDS = 60

MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
# §4.6.4: the terms that cause DNS queries at evaluation time (redirect is the modifier among them).
DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
QUALIFIERS = "+-?~"

_VERSION = re.compile(r"^v=spf1(?: |$)", re.IGNORECASE)
# §12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ); a term is a modifier when `name "="`.
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE | re.DOTALL)
_MECHANISM_NAME = re.compile(r"^([a-z0-9]+)(.*)$", re.IGNORECASE | re.DOTALL)
# §12: ip4-cidr-length "/" ("0" / %x31-39 0*1DIGIT); ip6 up to three digits.
_CIDR4 = re.compile(r"^/(0|[1-9][0-9]?)$")
_CIDR6 = re.compile(r"^/(0|[1-9][0-9]{0,2})$")
_DUAL_CIDR = re.compile(r"^(.*?)(/(?:0|[1-9][0-9]*))?(//(?:0|[1-9][0-9]*))?$", re.DOTALL)
# §12: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_TOPLABEL = re.compile(r"^(?:[a-z0-9]*[a-z][a-z0-9]*|[a-z0-9]+-[a-z0-9-]*[a-z0-9])$", re.IGNORECASE)
# §12 (and §7.1): macro-letter, transformers = *DIGIT [ "r" ], delimiter.
_MACRO_BODY = re.compile(r"^([slodiphcrtv])([0-9]*)(r?)([.\-+,/_=]*)$", re.IGNORECASE)
_IP4_NETWORK = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$")


class SpfSyntaxError(DmarcbotError, ValueError):
    """A record that does not follow RFC 7208 §12: the term at fault and why (a permerror, §4.6)."""

    def __init__(self, term: str, reason: str) -> None:
        super().__init__(f"{term!r}: {reason}" if term else reason)
        self.term = term
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class SpfTerm:
    """One term of a record: a mechanism with its qualifier, or a modifier."""

    raw: str
    name: str  # lower case: "ip4", "include", "redirect", "exp", or an unknown modifier's name
    value: str  # the domain-spec, network or modifier value; "" when absent
    qualifier: str = ""  # "+", "-", "~", "?" for mechanisms (§4.6.2 default "+"); "" for modifiers
    is_modifier: bool = False
    cidr4: int | None = None
    cidr6: int | None = None

    @property
    def has_macro(self) -> bool:
        """True when the value needs macro expansion (§7), so only a message can resolve it."""
        return "%" in self.value

    @property
    def queries_dns(self) -> bool:
        """True for the terms RFC 7208 §4.6.4 counts towards the 10-lookup limit."""
        return self.name in DNS_TERMS

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The network an ip4/ip6 mechanism names (host bits cleared), else None."""
        if self.name == "ip4":
            return ipaddress.IPv4Network(
                f"{self.value}/{32 if self.cidr4 is None else self.cidr4}", strict=False
            )
        if self.name == "ip6":
            return ipaddress.IPv6Network(
                f"{self.value}/{128 if self.cidr6 is None else self.cidr6}", strict=False
            )
        return None


@dataclass(frozen=True)
class SpfRecord:
    """A parsed `v=spf1` record: its raw text and its terms in order."""

    raw: str
    terms: tuple[SpfTerm, ...]

    @property
    def mechanisms(self) -> tuple[SpfTerm, ...]:
        """The mechanisms, in order (modifiers left out)."""
        return tuple(t for t in self.terms if not t.is_modifier)

    @property
    def all_term(self) -> SpfTerm | None:
        """The first `all` mechanism: evaluation always stops there (§5.1)."""
        return next((t for t in self.terms if t.name == "all"), None)

    @property
    def redirect(self) -> SpfTerm | None:
        """The redirect= modifier, whether or not it applies (see effective_redirect)."""
        return next((t for t in self.terms if t.name == "redirect"), None)

    @property
    def exp(self) -> SpfTerm | None:
        """The exp= modifier (§6.2), if any."""
        return next((t for t in self.terms if t.name == "exp"), None)

    @property
    def effective_redirect(self) -> SpfTerm | None:
        """The redirect that applies: §6.1 ignores it when the record has an `all` mechanism."""
        return None if self.all_term is not None else self.redirect

    def reachable_mechanisms(self) -> tuple[SpfTerm, ...]:
        """The mechanisms an evaluation can reach: those up to and including the first `all`
        (§4.6.2: evaluation stops at the first match, and `all` always matches)."""
        out: list[SpfTerm] = []
        for term in self.mechanisms:
            out.append(term)
            if term.name == "all":
                break
        return tuple(out)

    def dns_terms(self) -> tuple[SpfTerm, ...]:
        """The terms of this record that count towards the §4.6.4 limit of 10."""
        terms = [t for t in self.reachable_mechanisms() if t.queries_dns]
        redirect = self.effective_redirect
        if redirect is not None:
            terms.append(redirect)
        return tuple(terms)


def is_spf_record(txt: str) -> bool:
    """True when a TXT string is an SPF record: `v=spf1` then a space or the end (§4.5)."""
    return bool(_VERSION.match(txt))


# A provider's record is reached from every domain that includes it: parsed once, then served from
# here (the result is immutable and a function of the text alone, so no answer's freshness is at
# stake). Bounded, so a cycle over many domains' own records cannot grow it without limit.
PARSED_RECORDS_KEPT = 1024


@functools.lru_cache(maxsize=PARSED_RECORDS_KEPT)
def parse_spf_record(record: str) -> SpfRecord:
    """Parse one `v=spf1` record by RFC 7208 §12, or raise SpfSyntaxError naming the term at fault."""
    if not is_spf_record(record):
        raise SpfSyntaxError(record[:20], "the record does not start with v=spf1")
    terms: list[SpfTerm] = []
    seen_modifiers: set[str] = set()
    # §4.6.1: terms are separated by one or more SP (space only; a tab or a line break is part of
    # a term, and then that term is invalid). Trailing spaces are allowed (§12 `record`).
    for raw in record.split(" ")[1:]:
        if not raw:
            continue
        term = _parse_term(raw)
        if term.is_modifier and term.name in ("redirect", "exp"):
            # §6: redirect and exp MUST NOT appear more than once each.
            if term.name in seen_modifiers:
                raise SpfSyntaxError(raw, f"the {term.name} modifier appears more than once (§6)")
            seen_modifiers.add(term.name)
        terms.append(term)
    return SpfRecord(record, tuple(terms))


def _parse_term(raw: str) -> SpfTerm:
    if any(not 0x20 < ord(ch) < 0x7F for ch in raw):
        # §3 / §4.6.1: records are 7-bit ASCII and terms are separated by spaces only.
        raise SpfSyntaxError(raw, "contains a control or non-ASCII character")
    modifier = _MODIFIER.match(raw)
    if modifier:
        name, value = modifier.group(1).lower(), modifier.group(2)
        if name in ("redirect", "exp"):
            _check_domain_spec(raw, value)  # §6.1, §6.2: `redirect=`/`exp=` domain-spec
        else:
            _check_macro_string(raw, value)  # §6.3 unknown-modifier: name "=" macro-string
        return SpfTerm(raw=raw, name=name, value=value, is_modifier=True)

    qualifier = "+"
    body = raw
    if raw[0] in QUALIFIERS:
        qualifier, body = raw[0], raw[1:]
    found = _MECHANISM_NAME.match(body)
    name = found.group(1).lower() if found else ""
    rest = found.group(2) if found else body
    if name not in MECHANISMS:
        raise SpfSyntaxError(raw, "unknown mechanism (§4.6.1; an unknown mechanism is a permerror)")
    if name == "all":
        if rest:
            raise SpfSyntaxError(raw, "the all mechanism takes no argument (§5.1)")
        return SpfTerm(raw=raw, name=name, value="", qualifier=qualifier)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(raw, f"{name} needs a domain: {name}:<domain> (§5.2, §5.7)")
        _check_domain_spec(raw, rest[1:])
        return SpfTerm(raw=raw, name=name, value=rest[1:], qualifier=qualifier)
    if name == "ptr":
        if not rest:
            return SpfTerm(raw=raw, name=name, value="", qualifier=qualifier)
        if not rest.startswith(":"):
            raise SpfSyntaxError(raw, "ptr takes an optional :<domain> and no prefix length (§5.5)")
        _check_domain_spec(raw, rest[1:])
        return SpfTerm(raw=raw, name=name, value=rest[1:], qualifier=qualifier)
    if name in ("a", "mx"):
        return _parse_a_mx(raw, name, rest, qualifier)
    return _parse_ip(raw, name, rest, qualifier)


def _parse_a_mx(raw: str, name: str, rest: str, qualifier: str) -> SpfTerm:
    # §5.3, §5.4: a / mx [ ":" domain-spec ] [ dual-cidr-length ]
    split = _DUAL_CIDR.match(rest)
    assert split is not None  # the pattern matches every string
    domain_part, cidr4_text, cidr6_text = split.group(1), split.group(2), split.group(3)
    cidr4 = cidr6 = None
    if cidr4_text:
        if not _CIDR4.match(cidr4_text) or int(cidr4_text[1:]) > 32:
            raise SpfSyntaxError(raw, "an IPv4 prefix length must be 0 to 32 (§5.6)")
        cidr4 = int(cidr4_text[1:])
    if cidr6_text:
        if not _CIDR6.match(cidr6_text[1:]) or int(cidr6_text[2:]) > 128:
            raise SpfSyntaxError(raw, "an IPv6 prefix length must be 0 to 128 (§5.6)")
        cidr6 = int(cidr6_text[2:])
    value = ""
    if domain_part:
        if not domain_part.startswith(":"):
            raise SpfSyntaxError(raw, f"unknown mechanism; {name} takes :<domain> and /<prefix>")
        value = domain_part[1:]
        _check_domain_spec(raw, value)
    return SpfTerm(raw=raw, name=name, value=value, qualifier=qualifier, cidr4=cidr4, cidr6=cidr6)


def _parse_ip(raw: str, name: str, rest: str, qualifier: str) -> SpfTerm:
    # §5.6: ip4 ":" ip4-network [ ip4-cidr-length ], ip6 ":" ip6-network [ ip6-cidr-length ]
    if not rest.startswith(":"):
        raise SpfSyntaxError(raw, f"{name} needs an address: {name}:<address>[/<prefix>]")
    network, slash, prefix = rest[1:].partition("/")
    if name == "ip4":
        if not _IP4_NETWORK.match(network) or not _valid_ip(network, 4):
            raise SpfSyntaxError(raw, f"{network!r} is not an IPv4 address (§5.6)")
        if slash and (not _CIDR4.match("/" + prefix) or int(prefix) > 32):
            raise SpfSyntaxError(raw, "an IPv4 prefix length must be 0 to 32 (§5.6)")
        return SpfTerm(
            raw=raw, name=name, value=network, qualifier=qualifier, cidr4=int(prefix) if slash else None
        )
    if "%" in network or not _valid_ip(network, 6):
        raise SpfSyntaxError(raw, f"{network!r} is not an IPv6 address (§5.6)")
    if slash and (not _CIDR6.match("/" + prefix) or int(prefix) > 128):
        raise SpfSyntaxError(raw, "an IPv6 prefix length must be 0 to 128 (§5.6)")
    return SpfTerm(
        raw=raw, name=name, value=network, qualifier=qualifier, cidr6=int(prefix) if slash else None
    )


def _valid_ip(text: str, version: int) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.version == version


def _macro_tokens(raw: str, text: str, domain: bool = False) -> Iterator[tuple[bool, str]]:
    """Split a macro-string (§7.1) into (is_macro, text) tokens, raising on a malformed macro;
    `domain` for a domain-spec, where the c, r and t macros are not allowed (§7.3)."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            # §12 macro-literal = %x21-24 / %x26-7E
            if not 0x21 <= ord(ch) <= 0x7E:
                raise SpfSyntaxError(raw, f"character {ch!r} is not allowed here (§7.1)")
            yield False, ch
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt in ("%", "_", "-"):
            yield True, text[i : i + 2]
            i += 2
            continue
        if nxt != "{":
            raise SpfSyntaxError(raw, "a % must start %{x}, %%, %_ or %- (§7.1)")
        end = text.find("}", i)
        if end < 0:
            raise SpfSyntaxError(raw, "an unterminated %{ macro (§7.1)")
        body = text[i + 2 : end]
        found = _MACRO_BODY.match(body)
        if not found:
            raise SpfSyntaxError(
                raw,
                f"%{{{body}}} is not a valid macro (§7.1: letters s l o d i p "
                "h c r t v, digits, r, delimiters)",
            )
        if domain and found.group(1).lower() in "crt":
            raise SpfSyntaxError(
                raw,
                f"%{{{body}}}: the c, r and t macros are allowed only in "
                "explanation text, not in a domain (§7.3)",
            )
        if found.group(2) and int(found.group(2)) == 0:
            raise SpfSyntaxError(raw, f"%{{{body}}}: the digit transformer must be nonzero (§7.3)")
        yield True, text[i : end + 1]
        i = end + 1


def _check_macro_string(raw: str, text: str) -> None:
    for _ in _macro_tokens(raw, text):
        pass


def _check_domain_spec(raw: str, spec: str) -> None:
    # §12: domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand
    if not spec:
        raise SpfSyntaxError(raw, "a domain is required here")
    tokens = list(_macro_tokens(raw, spec, domain=True))
    if tokens[-1][0]:
        return  # ends with a macro-expand
    tail = "".join(text for _, text in _trailing_literals(tokens))
    if tail.endswith("."):
        tail = tail[:-1]
    label = tail.rpartition(".")[2]
    if "." not in tail or not _TOPLABEL.match(label):
        raise SpfSyntaxError(
            raw,
            f"{spec!r} does not end in a valid top label (a fully qualified "
            "domain such as example.com is required, §7.1)",
        )


def _trailing_literals(tokens: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    for token in reversed(tokens):
        if token[0]:
            break
        out.append(token)
    return list(reversed(out))


# -- the record check --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SpfInclude:
    """One record reached through `include:` or `redirect=`, with what it contributes."""

    domain: str
    mechanism: str  # "include" or "redirect"
    record: str | None  # None when the target has no usable record (missing, outage, several)
    dns_lookups: int  # DNS-querying terms inside this record and below it (the term itself
    #                   is counted in the parent's record)
    children: tuple[SpfInclude, ...] = ()
    failure: str | None = None  # why `record` is None: the failed lookup, or the missing record

    def to_json(self) -> dict[str, Any]:
        """This node and its children, as in `dmarcbot check --json`'s `spf.includes`."""
        return {
            "domain": self.domain,
            "via": self.mechanism,
            "record": self.record,
            "dns_lookups": self.dns_lookups,
            "includes": [child.to_json() for child in self.children],
        }


@dataclass(frozen=True, kw_only=True)
class SpfReport:
    """What `check_spf` found for a domain: the record, the expanded tree, the counts, findings."""

    domain: str
    record: str | None
    records: tuple[str, ...] = ()
    dns_lookups: int = 0
    void_lookups: int = 0
    includes: tuple[SpfInclude, ...] = ()
    findings: tuple[Finding, ...] = ()
    parsed: SpfRecord | None = field(default=None, repr=False)
    tree_records: tuple[SpfRecord, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        """The `spf` object of `dmarcbot check --json`."""
        return {
            "record": self.record,
            "dns_lookups": self.dns_lookups,
            "void_lookups": self.void_lookups,
            "includes": [include.to_json() for include in self.includes],
        }

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The ip4/ip6 networks of the record and every record it includes (for the fix-it flow)."""
        out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for record in self.tree_records:
            for term in record.reachable_mechanisms():
                network = term.network()
                if network is not None and network not in out:
                    out.append(network)
        return tuple(out)

    def senders(self) -> tuple[str, ...]:
        """The domains this record authorises through include (direct ones first)."""
        out: list[str] = []

        def walk(nodes: tuple[SpfInclude, ...]) -> None:
            for node in nodes:
                if node.mechanism == "include" and node.domain not in out:
                    out.append(node.domain)
            for node in nodes:
                walk(node.children)

        walk(self.includes)
        return tuple(out)


@dataclass(kw_only=True)
class _Node:
    domain: str
    via: str
    record: str | None
    parsed: SpfRecord | None
    path: tuple[str, ...]  # the domains from the checked one down to this one
    reached_by: str = ""  # e.g. "'include:x.example' in the record of example.com"
    children: list[_Node] = field(default_factory=list)
    failure: str | None = None

    def total_lookups(self) -> int:
        own = len(self.parsed.dns_terms()) if self.parsed else 0
        return own + sum(child.total_lookups() for child in self.children)

    def freeze(self) -> SpfInclude:
        return SpfInclude(
            domain=self.domain,
            mechanism=self.via,
            record=self.record,
            dns_lookups=self.total_lookups(),
            children=tuple(child.freeze() for child in self.children),
            failure=self.failure,
        )


@dataclass(kw_only=True)
class _Expansion:
    """Mutable state of one check; only the event loop thread touches it."""

    session: DnsSession
    findings: list[Finding] = field(default_factory=list)
    voids: list[str] = field(default_factory=list)  # a description of each void lookup
    side: list[asyncio.Task[list[Finding]]] = field(default_factory=list)
    expanded: int = 0
    truncated: bool = False

    def add(self, item: Finding) -> None:
        if item not in self.findings:  # the same include reached twice says the same thing once
            self.findings.append(item)


def _temperror(lookup: Lookup, term: SpfTerm | None, record: str | None) -> Finding:
    if lookup.is_cname_loop:
        return cname_loop_finding(lookup)
    where = f" for the term {term.raw!r}" if term is not None else ""
    return finding(
        "dns.temperror",
        f"{lookup.describe_failure()}{where}. SPF evaluation would give temperror; whether the "
        "record is correct is unknown until the lookup succeeds.",
        record=record,
    )


async def check_spf(session: DnsSession, domain: str) -> SpfReport:
    """Fetch, parse and expand the SPF record of `domain`, and report every RFC 7208 problem."""
    domain = normalise_name(domain)
    top = await session.lookup(domain, "TXT")
    if top.is_outage:
        return SpfReport(domain=domain, record=None, findings=(_temperror(top, None, None),))
    records = tuple(r for r in top.records if is_spf_record(r))
    if not records:
        if top.status is DnsStatus.NXDOMAIN:
            why = f"{domain} does not exist (NXDOMAIN), so it has no SPF record"
        elif not top.records:
            why = f"{domain} has no TXT records at all"
        else:
            why = f"none of the {len(top.records)} TXT records at {domain} starts with v=spf1"
        return SpfReport(domain=domain, record=None, findings=(finding("spf.missing", why + "."),))
    if len(records) > 1:
        # §4.5: more than one v=spf1 record is a permerror; nothing else can be said usefully.
        listing = "\n".join(records)
        detail = (
            f"{domain} publishes {len(records)} v=spf1 records; receivers return permerror "
            "and ignore all of them (RFC 7208 §4.5)."
        )
        return SpfReport(
            domain=domain,
            record=None,
            records=records,
            findings=(finding("spf.multiple", detail, record=listing),),
        )
    record = records[0]
    try:
        parsed = parse_spf_record(record)
    except SpfSyntaxError as error:
        detail = f"In the SPF record of {domain}, {error.term!r}: {error.reason}."
        return SpfReport(
            domain=domain,
            record=record,
            records=records,
            findings=(finding("spf.syntax", detail, record=record),),
        )

    state = _Expansion(session=session)
    root = _Node(domain=domain, via="", record=record, parsed=parsed, path=(domain,))
    await _expand(state, root)
    for task_findings in await asyncio.gather(*state.side):
        for item in task_findings:
            state.add(item)

    lookups = root.total_lookups()
    _judge_counts(state, root, lookups)
    _judge_all(state, root)
    findings = sorted(state.findings, key=lambda f: f.severity.rank)
    return SpfReport(
        domain=domain,
        record=record,
        records=records,
        dns_lookups=lookups,
        void_lookups=len(state.voids),
        includes=tuple(child.freeze() for child in root.children),
        findings=tuple(findings),
        parsed=parsed,
        tree_records=tuple(_tree_records(root)),
    )


def _tree_records(node: _Node) -> Iterator[SpfRecord]:
    if node.parsed is not None:
        yield node.parsed
    for child in node.children:
        yield from _tree_records(child)


async def _expand(state: _Expansion, root: _Node) -> None:
    """Walk the include/redirect tree breadth first: one concurrent round of TXT lookups per level,
    while the a/mx/exists lookups of every level run beside them as tasks."""
    level = [root]
    while level:
        wanted: list[tuple[_Node, SpfTerm, str]] = []
        for node in level:
            assert node.parsed is not None
            for term in node.parsed.dns_terms():
                if term.has_macro:
                    continue  # §7: depends on the message; counted, not resolvable here
                if term.name in ("include", "redirect"):
                    target = normalise_name(term.value)
                    if not _is_dns_name(target):
                        # §4.3 / §4.8: a malformed name has no record; for include and
                        # redirect that is a permerror (§5.2, §6.1).
                        state.add(
                            finding(
                                "spf.include_missing",
                                f"{term.raw!r} in the record of {node.domain}: {target!r} is not a "
                                "valid domain name (an empty label or one over 63 characters), so it "
                                "has no SPF record. Receivers return permerror.",
                                record=node.record,
                            )
                        )
                        continue
                    if target in node.path:
                        state.add(
                            finding(
                                "spf.loop",
                                f"{term.raw!r} in the record of {node.domain} leads back to {target}, "
                                f"which is already being evaluated: {_path(node, target)}. Receivers "
                                "return permerror (RFC 7208 §4.6.4 limits make every loop fail).",
                                record=node.record,
                            )
                        )
                        continue
                    wanted.append((node, term, target))
                elif term.name in ("a", "mx", "exists"):
                    state.side.append(asyncio.create_task(_check_hosts(state, node, term)))
                # ptr needs the connecting IP (§5.5): counted only.
        if state.expanded + len(wanted) > MAX_EXPANDED_RECORDS:
            state.truncated = True
            wanted = wanted[: max(0, MAX_EXPANDED_RECORDS - state.expanded)]
        state.expanded += len(wanted)
        answers = await state.session.lookup_many((target, "TXT") for _, _, target in wanted)
        next_level: list[_Node] = []
        for (parent, term, target), answer in zip(wanted, answers, strict=True):
            child = _child(state, parent, term, target, answer)
            if child is not None:
                parent.children.append(child)
                if child.parsed is not None:
                    next_level.append(child)
        level = next_level


def _path(node: _Node, target: str) -> str:
    return " → ".join([*node.path, target])


def _child(state: _Expansion, parent: _Node, term: SpfTerm, target: str, answer: Lookup) -> _Node | None:
    """The node for one include/redirect target, with the findings its TXT answer calls for."""
    via = term.name
    reached_by = f"{term.raw!r} in the record of {parent.domain}"
    if answer.is_outage:
        state.add(_temperror(answer, term, parent.record))
        failed = f"unknown: {answer.describe_failure()}"
        return _Node(
            domain=target,
            via=via,
            record=None,
            parsed=None,
            path=(*parent.path, target),
            reached_by=reached_by,
            failure=failed,
        )
    if answer.is_void:
        # pyspf and §4.6.4: a TXT lookup that returns nothing is a void lookup too.
        state.voids.append(f"{term.raw} ({answer.describe_failure()})")
    records = [r for r in answer.records if is_spf_record(r)]
    if not records:
        why = (
            answer.describe_failure()
            if answer.is_void
            else (f"{target} has TXT records but none starts with v=spf1")
        )
        section = "§5.2" if via == "include" else "§6.1"
        state.add(
            finding(
                "spf.include_missing",
                f"{term.raw!r} in the record of {parent.domain}: {why}. Receivers return permerror "
                f"(RFC 7208 {section}).",
                record=parent.record,
            )
        )
        return _Node(
            domain=target,
            via=via,
            record=None,
            parsed=None,
            path=(*parent.path, target),
            reached_by=reached_by,
            failure=f"no SPF record: {why}",
        )
    if len(records) > 1:
        state.add(
            finding(
                "spf.multiple",
                f"{target}, reached by {term.raw!r} from {parent.domain}, publishes {len(records)} "
                "v=spf1 records: permerror (RFC 7208 §4.5).",
                record="\n".join(records),
            )
        )
        several = f"{len(records)} v=spf1 records (permerror)"
        return _Node(
            domain=target,
            via=via,
            record=None,
            parsed=None,
            path=(*parent.path, target),
            reached_by=reached_by,
            failure=several,
        )
    try:
        parsed = parse_spf_record(records[0])
    except SpfSyntaxError as error:
        state.add(
            finding(
                "spf.syntax",
                f"In the SPF record of {target}, reached by {term.raw!r} from {parent.domain}, "
                f"{error.term!r}: {error.reason}.",
                record=records[0],
            )
        )
        return _Node(
            domain=target,
            via=via,
            record=records[0],
            parsed=None,
            path=(*parent.path, target),
            reached_by=reached_by,
        )
    return _Node(
        domain=target,
        via=via,
        record=records[0],
        parsed=parsed,
        path=(*parent.path, target),
        reached_by=reached_by,
    )


def _is_dns_name(name: str) -> bool:
    try:
        encode_name(name)
    except dns.exception.DNSException:
        return False
    return True


def _address_void(lookups: list[Lookup]) -> bool:
    # An a/mx host lookup queries A for an IPv4 client and AAAA for an IPv6 one (§5.3). Without a
    # client we call the name void only when it has no address of either family, so a name with
    # only A records is not flagged (it is void only for IPv6 clients).
    return all(lookup.is_void for lookup in lookups)


async def _check_hosts(state: _Expansion, node: _Node, term: SpfTerm) -> list[Finding]:
    """Look up what an a, mx or exists term names, for the void-lookup and mx-host rules."""
    target = normalise_name(term.value) if term.value else node.domain
    session, record = state.session, node.record
    out: list[Finding] = []
    if not _is_dns_name(target):
        return out  # pyspf asks nothing for a malformed name and does not count it as void
    if term.name == "exists":
        # §5.7: exists always queries A, whatever the client's address family.
        answer = await session.lookup(target, "A")
        if answer.is_outage:
            return [_temperror(answer, term, record)]
        if answer.is_void:
            state.voids.append(f"{term.raw} in {node.domain} ({answer.describe_failure()})")
        return out
    if term.name == "a":
        answers = await session.lookup_many([(target, "A"), (target, "AAAA")])
        outages = [a for a in answers if a.is_outage]
        if outages:
            return [_temperror(outages[0], term, record)]
        if _address_void(answers):
            state.voids.append(f"{term.raw} in {node.domain} ({answers[0].describe_failure()})")
        return out
    # mx: §5.4 — the MX lookup, then the address of every exchange.
    answer = await session.lookup(target, "MX")
    if answer.is_outage:
        return [_temperror(answer, term, record)]
    if answer.is_void:
        state.voids.append(f"{term.raw} in {node.domain} ({answer.describe_failure()})")
        return out
    hosts = [text.partition(" ")[2] for text in answer.records]
    hosts = [h for h in hosts if h and h != "."]  # a null MX (RFC 7505) names no host
    if len(hosts) > MAX_MX_HOSTS:
        # §4.6.4: an mx term that needs more than 10 address lookups is a permerror.
        out.append(
            finding(
                "spf.too_many_lookups",
                f"{term.raw!r} in the record of {node.domain}: {target} has {len(hosts)} MX hosts; "
                f"more than {MAX_MX_HOSTS} is a permerror (RFC 7208 §4.6.4).",
                record=record,
            )
        )
        return out
    lookups = await session.lookup_many([(h, t) for h in hosts for t in ("A", "AAAA")])
    for index, host in enumerate(hosts):
        pair = lookups[2 * index : 2 * index + 2]
        outages = [a for a in pair if a.is_outage]
        if outages:
            out.append(_temperror(outages[0], term, record))
        elif _address_void(pair):
            # pyspf counts each exchange without an address as a void lookup (§4.6.4).
            state.voids.append(
                f"MX host {host} of {term.raw} in {node.domain} ({pair[0].describe_failure()})"
            )
    return out


def _judge_counts(state: _Expansion, root: _Node, lookups: int) -> None:
    breakdown = _breakdown(root)
    more = " at least" if state.truncated else ""
    if lookups > MAX_DNS_LOOKUPS:
        state.add(
            finding(
                "spf.too_many_lookups",
                f"The SPF record of {root.domain} needs{more} {lookups} DNS lookups once includes and "
                f"redirects are expanded ({breakdown}); more than {MAX_DNS_LOOKUPS} is a permerror "
                "(RFC 7208 §4.6.4).",
                record=root.record,
            )
        )
    elif lookups >= MAX_DNS_LOOKUPS - 1:
        state.add(
            finding(
                "spf.near_limit",
                f"The SPF record of {root.domain} needs {lookups} of the {MAX_DNS_LOOKUPS} DNS lookups "
                f"allowed ({breakdown}).",
                record=root.record,
            )
        )
    if len(state.voids) > MAX_VOID_LOOKUPS:
        state.add(
            finding(
                "spf.void_lookups",
                f"{len(state.voids)} lookups return no answer, more than the {MAX_VOID_LOOKUPS} "
                f"allowed (RFC 7208 §4.6.4): {'; '.join(state.voids)}.",
                record=root.record,
            )
        )


def _breakdown(root: _Node) -> str:
    assert root.parsed is not None
    parts = [f"{len(root.parsed.dns_terms())} in the record itself"]
    parts += [
        f"{child.total_lookups()} inside {child.via}:{child.domain}"
        for child in root.children
        if child.total_lookups()
    ]
    return ", ".join(parts)


def _judge_all(state: _Expansion, root: _Node) -> None:
    # +all anywhere it can be reached lets anyone pass: in the record, its redirect target, or an
    # included record (an include that passes makes the including term match, §5.2).
    for node in _walk(root):
        if node.parsed is None:
            continue
        all_term = node.parsed.all_term
        if all_term is not None and all_term.qualifier == "+":
            where = (
                f"the SPF record of {node.domain}"
                if node is root
                else f"the record of {node.domain} (reached by {node.reached_by})"
            )
            state.add(
                finding(
                    "spf.pass_all",
                    f"{all_term.raw!r} in {where}: every IP address on the internet passes SPF for "
                    f"{root.domain}.",
                    record=node.record,
                )
            )
    # The result for senders matching nothing comes from the record's own all, or its redirect
    # chain (§6.1), or the default neutral (§4.7).
    current: _Node | None = root
    while current is not None and current.parsed is not None:
        last = current.parsed.all_term
        if last is not None:
            if last.qualifier == "?":
                state.add(
                    finding(
                        "spf.neutral_all",
                        f"{last.raw!r} in the record of {current.domain}: mail from any other "
                        "server gets neutral, which receivers treat like no SPF at all.",
                        record=current.record,
                    )
                )
            break
        if current.parsed.effective_redirect is None:
            state.add(
                finding(
                    "spf.neutral_all",
                    f"The record of {current.domain} has no all mechanism and no redirect: mail from "
                    "any other server gets neutral (RFC 7208 §4.7).",
                    record=current.record,
                )
            )
            break
        current = next((c for c in current.children if c.via == "redirect"), None)
    for node in _walk(root):
        if node.parsed is None:
            continue
        for term in node.parsed.reachable_mechanisms():
            if term.name == "ptr":
                state.add(
                    finding(
                        "spf.ptr",
                        f"{term.raw!r} in the record of {node.domain}: ptr is slow, unreliable and "
                        "deprecated (RFC 7208 §5.5); many receivers skip it.",
                        record=node.record,
                    )
                )


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


__all__ = [
    "SpfInclude",
    "SpfRecord",
    "SpfReport",
    "SpfSyntaxError",
    "SpfTerm",
    "check_spf",
    "is_spf_record",
    "parse_spf_record",
]
