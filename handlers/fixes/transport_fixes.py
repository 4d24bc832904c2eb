"""MTA-STS, TLS-RPT and BIMI fixes: the records to publish, the policy file's exact content, the steps.

Each proposal is judged by the same parsers the check uses (a record the check would call invalid
is never offered). MTA-STS starts in `testing` mode (RFC 8461 §5: senders report failures but still
deliver) with the MX hosts the domain publishes now; BIMI needs DMARC at enforcement first, so when
the policy is not there the steps start with the policy progression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from handlers.dns.dns_entry import DnsEntry
from handlers.domain.bimi import SELECTOR as BIMI_SELECTOR
from handlers.domain.bimi import parse_record as parse_bimi_record
from handlers.domain.mta_sts import POLICY_PATH, parse_policy, record_problem
from handlers.domain.tls_rpt import parse_tls_rpt_record
from handlers.fixes.records import FixInputError, Proposal, is_mail_address

# A week: long enough that a sender keeps the policy between fetches, short enough that a mistake in
# testing mode is forgotten soon (RFC 8461 §3.2 suggests weeks once the policy is stable).
DEFAULT_MAX_AGE = 604_800


@dataclass(frozen=True, kw_only=True)
class TransportChoices:
    """The modal's inputs for these fixes: where TLS reports go; the BIMI logo and certificate."""

    tls_rua: str | None = None  # a mail address, without mailto:
    logo_url: str | None = None
    certificate_url: str | None = None


def policy_host(domain: str) -> str:
    return f"mta-sts.{domain}"


def policy_url(domain: str) -> str:
    return f"https://{policy_host(domain)}{POLICY_PATH}"


def fresh_policy_id(now: datetime | None = None) -> str:
    """An id= senders have not seen: the time, to the second (RFC 8461 §3.1: 1 to 32 alphanumerics;
    a sender fetches the policy again only when the id changes)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")


def policy_text(mx_hosts: tuple[str, ...], max_age: int = DEFAULT_MAX_AGE, mode: str = "testing") -> str:
    """The policy file (RFC 8461 §3.2), CRLF line ends as the RFC's examples have them."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {h}" for h in mx_hosts), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def propose_mta_sts(
    domain: str,
    mx_hosts: tuple[str, ...],
    before: tuple[str, ...],
    clears: tuple[str, ...],
    now: datetime | None = None,
) -> Proposal:
    """The `_mta-sts` record with a fresh id=, and the policy file to host, in testing mode."""
    host = f"_mta-sts.{domain}"
    record = f"v=STSv1; id={fresh_policy_id(now)}"
    hosts = tuple(dict.fromkeys(h.lower().rstrip(".") for h in mx_hosts if h))
    text = policy_text(hosts)
    problems = []
    if not hosts:
        problems.append(
            f"{domain} publishes no MX host: MTA-STS protects mail delivered to MX hosts, so there is "
            "nothing for a policy to name (publish the MX records first)"
        )
    else:
        _, policy_problems = parse_policy(text)
        problems += [f"the policy file would be invalid: {p}" for p in policy_problems]
        problem = record_problem(record)
        if problem:
            problems.append(f"the record {problem}")
    steps = (
        f"1. Serve the file below at {policy_url(domain)} exactly as shown (HTTPS on port 443, a "
        f"certificate valid for {policy_host(domain)}, status 200, no redirect, Content-Type "
        "text/plain).\n"
        "2. Then publish the record below; senders fetch the policy when they see a new id=.\n"
        "3. Once TLS reports (TLS-RPT) show every sender connecting securely, change mode: testing "
        "to mode: enforce in the file, and the record's id= to a new value."
    )
    return Proposal(
        kind="mta_sts",
        domain=domain,
        host=host,
        rdtype="TXT",
        before=before,
        entries=(DnsEntry(host=host, rdtype="TXT", value=record, zone=domain),),
        clears=clears,
        notes=(
            "testing mode: senders report TLS failures to the TLS-RPT address but still deliver, so a "
            "mistake in the file loses no mail (RFC 8461 §5).",
            f"max_age: {DEFAULT_MAX_AGE} (a week); raise it once the policy is stable.",
        ),
        problems=tuple(problems),
        steps=steps,
        delete=tuple(before[1:]),
        hosted_file=(policy_url(domain), text),
    )


def parse_tls_rua_input(text: str, domain: str) -> str | None:
    """The address typed for TLS reports (empty: not given yet), or FixInputError saying what works."""
    address = text.strip().removeprefix("mailto:").strip()
    if not address:
        return None
    if not is_mail_address(address):
        raise FixInputError(
            "tls_rua",
            f"“{address[:60]}” is not a mail address: write it like tls-reports@{domain}.",
        )
    return address


def propose_tls_rpt(
    domain: str, choices: TransportChoices, before: tuple[str, ...], clears: tuple[str, ...]
) -> Proposal:
    """The `_smtp._tls` record reporting to the team's address; without one, the modal asks."""
    host = f"_smtp._tls.{domain}"
    if not choices.tls_rua:
        return Proposal(
            kind="tls_rpt",
            domain=domain,
            host=host,
            rdtype="TXT",
            before=before,
            entries=(),
            clears=clears,
            problems=(
                "no address for TLS reports yet: type the mailbox your team reads (such as "
                f"tls-reports@{domain}) in the field below",
            ),
        )
    record = f"v=TLSRPTv1; rua=mailto:{choices.tls_rua}"
    _, problem = parse_tls_rpt_record(record)
    return Proposal(
        kind="tls_rpt",
        domain=domain,
        host=host,
        rdtype="TXT",
        before=before,
        entries=(DnsEntry(host=host, rdtype="TXT", value=record, zone=domain),),
        clears=clears,
        notes=(
            "Senders that use MTA-STS or DANE mail a daily JSON report of failed TLS connections to "
            "this address (RFC 8460); a report-reading service's address works too.",
        ),
        problems=(f"the record {problem}",) if problem else (),
        delete=tuple(before[1:]),
    )


def propose_bimi(
    domain: str,
    choices: TransportChoices,
    before: tuple[str, ...],
    clears: tuple[str, ...],
    enforcement: tuple[str, str] | None,
) -> Proposal:
    """The `default._bimi` record for the logo (and certificate) given. `enforcement`, when DMARC
    is not there, is (the DMARC finding whose fix comes first, why in words): the steps start with
    it, since receivers show no logo before it."""
    host = f"{BIMI_SELECTOR}._bimi.{domain}"
    logo = choices.logo_url or f"https://{domain}/bimi/logo.svg"
    tags = ["v=BIMI1", f"l={logo}"]
    if choices.certificate_url:
        tags.append(f"a={choices.certificate_url}")
    record = "; ".join(tags)
    _, problem = parse_bimi_record(record)
    steps = []
    if enforcement:
        first, why = enforcement
        steps.append(
            f"1. First move DMARC to enforcement ({why}): the Fix it for {first}, linked in the plan, "
            "takes it one step at a time (none → quarantine → reject) with a readiness check from your "
            "aggregate reports."
        )
    steps.append(
        f"{len(steps) + 1}. Host the logo as SVG Tiny PS (square, with a <title>, no scripts, at most "
        f"32 KB) at {logo}."
    )
    steps.append(
        f"{len(steps) + 1}. Optional, but Gmail and Apple Mail require it: a Verified Mark Certificate "
        "(VMC) or Common Mark Certificate (CMC) from a Mark Verifying Authority, its PEM chain hosted "
        "over HTTPS and named by a= in the record."
    )
    steps.append(f"{len(steps) + 1}. Publish the record below.")
    notes = []
    if not choices.logo_url:
        notes.append(f"The logo address is a suggestion: type where your logo is hosted ({logo} now).")
    return Proposal(
        kind="bimi",
        domain=domain,
        host=host,
        rdtype="TXT",
        before=before,
        entries=(DnsEntry(host=host, rdtype="TXT", value=record, zone=domain),),
        clears=clears,
        notes=tuple(notes),
        problems=(f"the record {problem}",) if problem else (),
        steps="\n".join(steps),
        delete=tuple(before[1:]),
        prerequisite_fix=enforcement[0] if enforcement else None,
    )


def parse_https_url_input(field_name: str, text: str, example: str) -> str | None:
    """An https:// URL typed in the modal (empty: none), or FixInputError naming a working one."""
    value = text.strip()
    if not value:
        return None
    _, problem = parse_bimi_record(f"v=BIMI1; l={value}")
    if problem or len(value) > 500 or ";" in value:
        raise FixInputError(
            field_name, f"“{value[:60]}” is not an https:// address: write it like {example}."
        )
    return value


__all__ = [
    "DEFAULT_MAX_AGE",
    "TransportChoices",
    "fresh_policy_id",
    "parse_https_url_input",
    "parse_tls_rua_input",
    "policy_text",
    "propose_bimi",
    "propose_mta_sts",
    "propose_tls_rpt",
]
