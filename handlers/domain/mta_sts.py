"""The MTA-STS part of a domain check (RFC 8461): the `_mta-sts` record, the policy, its MX patterns.

The record and the policy are read concurrently with the rest of the check; whether the policy
covers every MX host is decided once both are known (`covering`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession
from handlers.domain.findings import Finding, absence_words, finding, temperror_finding
from handlers.domain.mx import MxReport
from handlers.https_fetch import HttpsClient, HttpsResponse, fetch
from handlers.limits import MAX_MTA_STS_MX_PATTERNS

POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.3
# RFC 8461 §3.1: "v=STSv1" first, then "id=" of 1 to 32 letters and digits; other fields are extensions.
_VERSION = re.compile(r"v=STSv1[ \t]*(;|$)")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: max_age is at most a year
SHORT_MAX_AGE = 86_400  # under a day, a policy protects little between two fetches
CERTIFICATE_WARNING = timedelta(days=14)
_MX_PATTERN = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


@dataclass(frozen=True)
class MtaStsPolicy:
    """The parsed policy file (RFC 8461 §3.2)."""

    mode: str
    max_age: int
    mx: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode, "max_age": self.max_age, "mx": list(self.mx)}

    def covers(self, host: str) -> bool:
        """RFC 8461 §4.1: a pattern matches the host exactly, or `*.` stands for one leftmost label."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, dot, rest = host.partition(".")
                if dot and label and rest == pattern[2:]:
                    return True
            elif pattern == host:
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class MtaStsReport:
    """The `_mta-sts` record, the policy fetched over HTTPS, and the findings of both."""

    domain: str
    record: str | None
    policy: MtaStsPolicy | None
    policy_text: str | None
    certificate_expires: datetime | None
    findings: tuple[Finding, ...]
    # the policy host could not be reached or timed out: the policy is unknown this time, not gone
    policy_unknown: bool = False

    @property
    def published(self) -> bool:
        """A record is published: the domain asks senders for MTA-STS, whatever its state."""
        return self.record is not None

    def to_json(self) -> dict[str, object]:
        return {"record": self.record, "policy": self.policy.to_json() if self.policy else None}

    def covering(self, mx: MxReport) -> MtaStsReport:
        """The report with `mta_sts.mx_not_covered` for each MX host no `mx:` pattern matches."""
        policy = self.policy
        if policy is None or policy.mode == "none" or mx.null_mx:
            return self
        uncovered = [h.host for h in mx.hosts if h.host and not policy.covers(h.host)]
        if not uncovered:
            return self
        names = ", ".join(display_name(h) for h in uncovered)
        problem = finding(
            "mta_sts.mx_not_covered",
            f"The MTA-STS policy of {display_name(self.domain)} ({policy.mode} mode) lists "
            f"{', '.join(policy.mx) or 'no mx: pattern'}, which does not match {names}: senders "
            "applying it refuse to deliver to "
            + ("that host" if len(uncovered) == 1 else "those hosts")
            + " (RFC 8461 §4.1).",
            fix="Add " + ", ".join(f'"mx: {h}"' for h in uncovered) + " to the policy file at "
            f"https://mta-sts.{self.domain}{POLICY_PATH}, then change the id= of the _mta-sts record.",
            record=self.policy_text,
        )
        return replace(self, findings=(*self.findings, problem))


async def check_mta_sts(
    session: DnsSession, domain: str, client: HttpsClient, *, now: datetime | None = None
) -> MtaStsReport:
    """Read the `_mta-sts` record; when it is valid, fetch and parse the policy it announces."""
    name = f"_mta-sts.{domain}"
    lookup = await session.lookup(name, "TXT")
    if lookup.is_outage:
        return MtaStsReport(
            domain=domain,
            record=None,
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(temperror_finding(lookup),),
        )
    records = [r for r in lookup.records if _VERSION.match(r)]
    shown = f"_mta-sts.{display_name(domain)}"
    if not records:
        why = absence_words(lookup)
        return MtaStsReport(
            domain=domain,
            record=None,
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(
                finding(
                    "mta_sts.missing", f"No v=STSv1 record at {shown} ({why}): senders do not require TLS."
                ),
            ),
        )
    if len(records) > 1:
        # RFC 8461 §3.1: more than one record means no policy at all to a sender.
        problem = finding(
            "mta_sts.record_invalid",
            f"{shown} has {len(records)} v=STSv1 records; senders then treat the domain as having no "
            "policy (RFC 8461 §3.1).",
            record=" | ".join(records),
            fix="Keep one v=STSv1 record.",
        )
        return MtaStsReport(
            domain=domain,
            record=records[0],
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(problem,),
        )
    record = records[0]
    invalid = record_problem(record)
    if invalid:
        problem = finding("mta_sts.record_invalid", f"The record at {shown} {invalid}.", record=record)
        return MtaStsReport(
            domain=domain,
            record=record,
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(problem,),
        )
    response = await fetch(client, session, f"mta-sts.{domain}", POLICY_PATH)
    if response.dns_outage is not None:
        return MtaStsReport(
            domain=domain,
            record=record,
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(temperror_finding(response.dns_outage),),
        )
    if not response.ok:
        problem = finding(
            "mta_sts.policy_unreachable",
            f"The MTA-STS policy at {response.url} could not be fetched: {response.failure} "
            f"(step: {response.failed_step.value if response.failed_step else 'fetch'}). Senders that "
            "cached the policy keep it until max_age ends; new senders have none.",
        )
        return MtaStsReport(
            domain=domain,
            record=record,
            policy=None,
            policy_text=None,
            certificate_expires=None,
            findings=(problem,),
            policy_unknown=response.transient,
        )
    return _read_policy(domain, record, response, now or datetime.now(UTC))


def record_problem(record: str) -> str | None:
    fields = [part.strip() for part in record.split(";")[1:] if part.strip()]
    ids = [f.partition("=")[2].strip() for f in fields if f.partition("=")[0].strip() == "id"]
    if not ids:
        return "has no id= field, which RFC 8461 §3.1 requires"
    if len(ids) > 1:
        return "has more than one id= field"
    if not _ID.fullmatch(ids[0]):
        return f'has id="{ids[0][:40]}", which must be 1 to 32 letters and digits (RFC 8461 §3.1)'
    return None


def _read_policy(domain: str, record: str, response: HttpsResponse, now: datetime) -> MtaStsReport:
    text = response.body.decode("utf-8", errors="replace")
    policy, problems = parse_policy(text)
    media_type = response.content_type.partition(";")[0].strip().lower()
    if media_type != "text/plain":
        problems.insert(
            0, f'it is served as "{media_type[:60] or "no type"}", not text/plain (RFC 8461 §3.2)'
        )
    findings: list[Finding] = []
    expires = response.certificate_expires
    if expires is not None and expires - now < CERTIFICATE_WARNING:
        days = max(0, (expires - now).days)
        findings.append(
            finding(
                "mta_sts.cert_expiring",
                f"The certificate of mta-sts.{display_name(domain)} expires on "
                f"{expires:%Y-%m-%d %H:%M} UTC, in {days} day(s).",
            )
        )
    if problems:
        findings.insert(
            0,
            finding(
                "mta_sts.policy_invalid",
                f"The MTA-STS policy at {response.url}: " + "; ".join(problems) + ". Senders ignore "
                "a policy they cannot parse.",
                record=text[:1000],
            ),
        )
        return MtaStsReport(
            domain=domain,
            record=record,
            policy=None,
            policy_text=text,
            certificate_expires=expires,
            findings=tuple(findings),
        )
    assert policy is not None
    if policy.mode == "testing":
        findings.append(
            finding(
                "mta_sts.testing",
                f"The MTA-STS policy of {display_name(domain)} is in testing mode: senders report "
                "TLS failures (to the TLS-RPT address) but still deliver over plain text.",
            )
        )
    if policy.max_age < SHORT_MAX_AGE:
        findings.append(
            finding(
                "mta_sts.max_age_short",
                f"max_age is {policy.max_age} seconds: senders forget the policy within a day, so an "
                "attacker who blocks its fetch strips TLS soon after (RFC 8461 §3.2 suggests weeks).",
            )
        )
    return MtaStsReport(
        domain=domain,
        record=record,
        policy=policy,
        policy_text=text,
        certificate_expires=expires,
        findings=tuple(findings),
    )


def parse_policy(text: str) -> tuple[MtaStsPolicy | None, list[str]]:
    """Parse an RFC 8461 §3.2 policy: `key: value` lines; returns the policy or what is wrong."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            return None, [f'the line "{line.strip()[:60]}" is not "key: value"']
        values.setdefault(key.strip().lower(), []).append(value.strip())
    problems = []
    if values.get("version") != ["STSv1"]:
        problems.append('"version: STSv1" is missing or wrong')
    mode = (values.get("mode") or [""])[0]
    if mode not in _MODES:
        problems.append(f'mode is "{mode[:20]}", not enforce, testing or none')
    max_age_text = (values.get("max_age") or [""])[0]
    max_age = int(max_age_text) if max_age_text.isascii() and max_age_text.isdigit() else -1
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        problems.append(
            f'max_age is "{max_age_text[:20]}", not a number of seconds from 0 to {MAX_AGE_LIMIT}'
        )
    patterns = [p.lower().rstrip(".") for p in values.get("mx", [])][:MAX_MTA_STS_MX_PATTERNS]
    bad = [p for p in patterns if not _MX_PATTERN.fullmatch(p)]
    if bad:
        problems.append(f'mx: "{bad[0][:60]}" is not a host name or *.domain pattern')
    if not patterns and mode in ("enforce", "testing"):
        problems.append("there is no mx: line, so no host is allowed")
    if problems:
        return None, problems
    return MtaStsPolicy(mode, max_age, tuple(patterns)), []
