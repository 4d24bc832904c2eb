"""Fixes as records: which findings can be fixed, the shape of a proposal, and the DMARC generator.

Slack-free: plain choices in, a `Proposal` out (the records to publish as exact DNS entries, what
they replace, what they should clear). SPF and DKIM generators live in `spf_fixes` and
`dkim_fixes`; every record is then checked by both parsers (`record_validation`) before it is shown.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from handlers.dns.dns_entry import DnsEntry
from handlers.dns.psl import same_organization
from handlers.domain.dmarc_record import POLICIES, is_dmarc_record, parse_dmarc_record
from handlers.errors import BadInput

# Finding id -> the generator that fixes it. Keyed on the public finding ids (handlers/domain/findings.py).
FIX_KINDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "dmarc.missing",
            "dmarc.syntax",
            "dmarc.multiple",
            "dmarc.no_rua",
            "dmarc.rua_unauthorized",
            "dmarc.deprecated_tag",
            "dmarc.subdomain_weaker",
        ),
        "dmarc",
    ),
    **dict.fromkeys(("dmarc.policy_none", "dmarc.testing"), "dmarc_progress"),
    **dict.fromkeys(
        (
            "spf.missing",
            "spf.multiple",
            "spf.syntax",
            "spf.pass_all",
            "spf.neutral_all",
            "spf.too_many_lookups",
            "spf.near_limit",
            "spf.include_missing",
            "spf.void_lookups",
            "spf.ptr",
            "spf.flattened_stale",
            "spf.sender_missing",
        ),
        "spf",
    ),
    "dkim.testing": "dkim_testing",
    **dict.fromkeys(
        (
            "mta_sts.missing",
            "mta_sts.record_invalid",
            "mta_sts.policy_invalid",
            "mta_sts.policy_unreachable",
            "mta_sts.mx_not_covered",
        ),
        "mta_sts",
    ),
    **dict.fromkeys(("tls_rpt.missing", "tls_rpt.invalid"), "tls_rpt"),
    **dict.fromkeys(("bimi.missing", "bimi.invalid", "bimi.dmarc_not_enforced"), "bimi"),
    **dict.fromkeys(
        ("dkim.weak_key", "dkim.key_missing", "dkim.no_selector", "dkim.key_revoked", "dkim.key_invalid"),
        "dkim_key",
    ),
}


def fix_kind(finding_id: str) -> str | None:
    """The generator for a finding id, or None when the flow has no fix for it."""
    return FIX_KINDS.get(finding_id)


class FixInputError(BadInput):
    """A choice typed in the fix-it form that cannot be used: the field, and what would be right."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """What to publish: `entries` (empty when only steps can be given), the records they replace
    (`before`), records to delete, notes, and `problems` — a proposal with problems is not offered."""

    kind: str
    domain: str
    host: str
    rdtype: str
    before: tuple[str, ...]
    entries: tuple[DnsEntry, ...]
    clears: tuple[str, ...]
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    steps: str = ""
    delete: tuple[str, ...] = ()
    watch_includes: tuple[str, ...] = ()  # flattened includes: their records must be watched
    selector: str | None = None
    # a finding whose fix must come first (BIMI needs DMARC at enforcement): the plan links to it
    prerequisite_fix: str | None = None
    # a file to serve over HTTPS, (its URL, its exact content): the MTA-STS policy
    hosted_file: tuple[str, str] | None = None

    @property
    def offered(self) -> bool:
        """True when the proposal may be shown and posted: something to do, nothing wrong."""
        return not self.problems and (bool(self.entries) or bool(self.steps))

    @property
    def after(self) -> tuple[str, ...]:
        return tuple(entry.value for entry in self.entries)

    def with_problems(self, problems: Sequence[str]) -> Proposal:
        """The same proposal refused for `problems` (it will not be offered)."""
        return replace(self, problems=(*self.problems, *problems))


def normalise_value(rdtype: str, value: str) -> str:
    """The form two records are compared in: DMARC tags without spacing, SPF terms lower-cased and
    single-spaced, DKIM without whitespace, a CNAME target without its trailing dot."""
    if rdtype == "CNAME":
        return value.strip().rstrip(".").lower()
    if is_dmarc_record(value):
        parts = [p.strip() for p in value.split(";") if p.strip()]
        return "; ".join("=".join(x.strip() for x in p.partition("=")[::2]) for p in parts)
    if value.strip().lower().startswith("v=spf1"):
        return " ".join(value.lower().split())
    return re.sub(r"\s+", "", value)


def value_digest(rdtype: str, value: str) -> str:
    """A short fingerprint of the normalised value, small enough for a button value."""
    return hashlib.sha256(normalise_value(rdtype, value).encode()).hexdigest()[:20]


# -- DMARC --------------------------------------------------------------------------------------

DMARC_DEFAULT_RUA_LOCAL = "dmarc-reports"


def default_rua(domain: str) -> str:
    """The domain's own report address the generator proposes."""
    return f"mailto:{DMARC_DEFAULT_RUA_LOCAL}@{domain}"


@dataclass(frozen=True, kw_only=True)
class DmarcChoices:
    """The tags a generated DMARC record carries; None for sp/np means "inherit p=" (§4.7)."""

    policy: str = "none"
    sp: str | None = None
    np: str | None = None
    rua: tuple[str, ...] = ()
    adkim: str = "r"
    aspf: str = "r"
    testing: bool = False
    fo: str | None = None
    ruf: tuple[str, ...] = ()
    psd: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


def build_dmarc_record(choices: DmarcChoices) -> str:
    """The record for `choices`: v and p first (older receivers expect p second), defaults left out."""
    tags = ["v=DMARC1", f"p={choices.policy}"]
    if choices.sp:
        tags.append(f"sp={choices.sp}")
    if choices.np:
        tags.append(f"np={choices.np}")
    if choices.adkim == "s":
        tags.append("adkim=s")
    if choices.aspf == "s":
        tags.append("aspf=s")
    if choices.testing:
        tags.append("t=y")  # RFC 9989 §4.7: the policy is applied one level lower
    if choices.psd:
        tags.append(f"psd={choices.psd}")
    if choices.fo and choices.fo != "0":
        tags.append(f"fo={choices.fo}")
    if choices.rua:
        tags.append("rua=" + ",".join(choices.rua))
    if choices.ruf:
        tags.append("ruf=" + ",".join(choices.ruf))
    return "; ".join(tags)


def closest_policy(value: str) -> str | None:
    """The policy a misspelt value most likely meant (`rejectt` → `reject`, `quarantaine` →
    `quarantine`), or None when it is not close to either. Never `none`: a typo of none is a short
    word close to anything, and guessing it would weaken a record."""
    close = difflib.get_close_matches(value.strip().lower(), ("reject", "quarantine"), n=1, cutoff=0.75)
    return close[0] if close else None


def dmarc_choices_from(records: Sequence[str], domain: str) -> DmarcChoices:
    """Choices that keep what the published record(s) say validly: invalid values fall back to
    defaults (fixing syntax), several records merge into one (their report addresses joined, the
    weaker policy kept so the merge never starts rejecting mail), removed tags are dropped."""
    parsed = [parse_dmarc_record(r) for r in records if is_dmarc_record(r)]
    if not parsed:
        return DmarcChoices(rua=(default_rua(domain),))
    notes: list[str] = []
    guessed: dict[str, str] = {}  # a misspelt policy value -> the valid one it is read as
    for record in parsed:
        for tag in ("p", "sp", "np"):
            value = record.tags.get(tag)
            if value is not None and getattr(record, tag) is None:
                closest = closest_policy(value)
                if closest is not None:
                    guessed[f"{tag}={value}"] = closest
                    notes.append(
                        f"{tag}={value} is not a policy; it is read as {tag}={closest}, the closest "
                        "valid value (choose another below if that was not meant)."
                    )
    read = [r.p if r.p is not None else guessed.get(f"p={r.tags.get('p')}") for r in parsed]
    policies = [p for p in read if p is not None]
    policy = min(policies, key=POLICIES.index) if policies else "none"
    if len(set(policies)) > 1:
        notes.append(f"The records disagreed on p=; the merged record keeps the weaker p={policy}.")
    first = parsed[0]
    rua = tuple(dict.fromkeys(u.uri for r in parsed for u in r.rua))
    ruf = tuple(dict.fromkeys(u.uri for r in parsed for u in r.ruf))
    for record in parsed:
        for tag in record.deprecated:
            notes.append(f"{tag}={record.tags[tag]} is dropped: RFC 9989 removed it.")
            if tag == "pct" and record.tags[tag].strip() == "0":
                notes.append("pct=0 becomes t=y, its RFC 9989 equivalent.")
        for tag in record.unknown_tags:
            notes.append(f"The unknown tag {tag}= is dropped: receivers ignore it (§4.7).")
        for problem in record.problems:
            if not any(problem.startswith(f"{typo} is not a policy") for typo in guessed):
                notes.append(f"Fixed: {problem}.")
    testing = any(r.testing for r in parsed) or any(r.tags.get("pct", "").strip() == "0" for r in parsed)
    return DmarcChoices(
        policy=policy,
        sp=first.sp or guessed.get(f"sp={first.tags.get('sp')}"),
        np=first.np or guessed.get(f"np={first.tags.get('np')}"),
        rua=rua,
        adkim=first.adkim,
        aspf=first.aspf,
        testing=testing,
        fo=first.fo if "fo" in first.tags and first.fo != "0" else None,
        ruf=ruf,
        psd=first.psd if "psd" in first.tags and first.psd != "u" else None,
        notes=tuple(dict.fromkeys(notes)),
    )


def next_policy_step(choices: DmarcChoices, via_test_mode: bool = False) -> DmarcChoices:
    """RFC 9989's progression: none → quarantine → reject, each optionally through t=y first
    (the new policy published, applied one level lower while reports confirm nothing breaks)."""
    if choices.testing:
        return replace(choices, testing=False)
    if choices.policy == "reject":
        return choices
    target = POLICIES[POLICIES.index(choices.policy) + 1]
    return replace(choices, policy=target, testing=via_test_mode)


def applied_policy_words(choices: DmarcChoices) -> str:
    """How receivers apply the record: "quarantine", or "none (p=quarantine under t=y)"."""
    if not choices.testing:
        return choices.policy
    lower = POLICIES[max(POLICIES.index(choices.policy) - 1, 0)]
    return f"{lower} (p={choices.policy} under t=y)"


def initial_dmarc_choices(
    finding_id: str, records: Sequence[str], domain: str, via_test_mode: bool = False
) -> DmarcChoices:
    """The proposal the modal opens with for a finding, before anyone changes an input."""
    choices = dmarc_choices_from(records, domain)
    if finding_id in ("dmarc.no_rua", "dmarc.missing") and not choices.rua:
        choices = replace(choices, rua=(default_rua(domain),))
    elif finding_id == "dmarc.rua_unauthorized":
        own = tuple(u for u in choices.rua if _same_org_uri(u, domain))
        choices = replace(choices, rua=own or (default_rua(domain),))
    elif finding_id == "dmarc.subdomain_weaker":
        choices = replace(choices, sp=None, np=None)
    elif finding_id in ("dmarc.policy_none", "dmarc.testing"):
        choices = next_policy_step(choices, via_test_mode)
    return choices


def _same_org_uri(uri: str, domain: str) -> bool:
    host = uri.rpartition("@")[2].rstrip(".").lower()
    return bool(host) and same_organization(host, domain)


_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def is_mail_address(address: str) -> bool:
    """A plain mail address a report can be sent to (at most 254 octets, RFC 5321 §4.5.3.1.3)."""
    return len(address) <= 254 and _ADDRESS.match(address) is not None


MAX_RUA = 4


def parse_rua_input(text: str, domain: str) -> tuple[str, ...]:
    """Report addresses typed in the form ("a@x.com, mailto:b@y.com"; empty: the domain's own
    default) as mailto: URIs, or FixInputError naming what is wrong."""
    items = [i for i in re.split(r"[\s,;]+", text.strip()) if i]
    if not items:
        return (default_rua(domain),)
    if len(items) > MAX_RUA:
        raise FixInputError("rua", f"At most {MAX_RUA} addresses; receivers may ignore more than two.")
    out = []
    for item in items:
        address = item[len("mailto:") :] if item.lower().startswith("mailto:") else item
        if not is_mail_address(address):
            raise FixInputError(
                "rua",
                f"“{item[:60]}” is not a mail address: write it like "
                f"dmarc-reports@{domain} (reports are delivered only by "
                "mail, RFC 9990 §3).",
            )
        out.append(f"mailto:{address}")
    return tuple(dict.fromkeys(out))


def dmarc_notes(choices: DmarcChoices, domain: str) -> tuple[str, ...]:
    """What a person should know about these choices before publishing them."""
    notes = list(choices.notes)
    external = sorted({u.rpartition("@")[2] for u in choices.rua if not _same_org_uri(u, domain)})
    for host in external:
        notes.append(
            f'Reports go to {host}: it must publish "v=DMARC1" at '
            f"{domain}._report._dmarc.{host} (RFC 9990 §4); collectors do this for "
            "their customers' domains."
        )
    if choices.policy != "none" and not choices.rua:
        notes.append("Without rua= you will not see which senders the policy blocks.")
    rank = POLICIES.index(choices.policy)
    for tag, value in (("sp", choices.sp), ("np", choices.np)):
        if value is not None and POLICIES.index(value) < rank:
            notes.append(f"{tag}={value} leaves subdomains weaker than p={choices.policy}.")
    return tuple(notes)


def propose_dmarc(
    domain: str,
    location: str,
    before: Sequence[str],
    choices: DmarcChoices,
    clears: Sequence[str],
    kind: str = "dmarc",
) -> Proposal:
    """The DMARC record for `choices`, as one TXT entry at `_dmarc.<location>` replacing `before`."""
    host = f"_dmarc.{location}"
    record = build_dmarc_record(choices)
    delete = tuple(before[1:]) if len(before) > 1 else ()
    return Proposal(
        kind=kind,
        domain=domain,
        host=host,
        rdtype="TXT",
        before=tuple(before),
        entries=(DnsEntry(host=host, rdtype="TXT", value=record, zone=location),),
        clears=tuple(clears),
        notes=dmarc_notes(choices, location),
        delete=delete,
    )


__all__ = [
    "FIX_KINDS",
    "DmarcChoices",
    "FixInputError",
    "Proposal",
    "applied_policy_words",
    "build_dmarc_record",
    "default_rua",
    "dmarc_choices_from",
    "dmarc_notes",
    "fix_kind",
    "initial_dmarc_choices",
    "next_policy_step",
    "normalise_value",
    "parse_rua_input",
    "propose_dmarc",
    "value_digest",
]
