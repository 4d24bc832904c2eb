"""The TLS-RPT part of a domain check (RFC 8460): where senders report failed TLS to the domain's MX hosts."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession
from handlers.domain.findings import Finding, Severity, absence_words, finding, temperror_finding

# RFC 8460 §3: the version must come first, exactly so; records that do not start with it are
# not TLS-RPT records and are ignored.
_VERSION = re.compile(r"v=TLSRPTv1[ \t]*(;|$)")
# RFC 8460 §3: a report destination is a mailto: address or an https: URL.
_RUA_URI = re.compile(r"(mailto:[^\s,;@]+@[^\s,;@]+|https://[^\s,;]+)", re.IGNORECASE)


@dataclass(frozen=True)
class TlsRptReport:
    """The record at `_smtp._tls.DOMAIN`, its report addresses, and its findings."""

    name: str
    record: str | None
    rua: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def missing(self) -> bool:
        return any(f.id == "tls_rpt.missing" for f in self.findings)

    def with_transport_policy(self, policy: str | None) -> TlsRptReport:
        """A missing record matters once the domain asks senders for TLS (MTA-STS or DANE): their
        failures then bounce or defer mail, and without TLS-RPT nobody hears of it."""
        if policy is None or not self.missing:
            return self
        return replace(
            self,
            findings=tuple(
                replace(
                    f,
                    severity=Severity.WARNING,
                    detail=f"{f.detail} The domain publishes {policy}, so senders that fail to reach its "
                    "MX hosts securely have nowhere to say so.",
                )
                if f.id == "tls_rpt.missing"
                else f
                for f in self.findings
            ),
        )

    def to_json(self) -> dict[str, object]:
        return {"record": self.record, "rua": list(self.rua)}


async def check_tls_rpt(session: DnsSession, domain: str) -> TlsRptReport:
    """Read and parse the TLS-RPT record; a missing one is info until MTA-STS raises it."""
    name = f"_smtp._tls.{domain}"
    lookup = await session.lookup(name, "TXT")
    if lookup.is_outage:
        return TlsRptReport(name, None, (), (temperror_finding(lookup),))
    records = [r for r in lookup.records if _VERSION.match(r)]
    shown = f"_smtp._tls.{display_name(domain)}"
    if not records:
        return TlsRptReport(
            name,
            None,
            (),
            (
                finding(
                    "tls_rpt.missing",
                    f"No v=TLSRPTv1 record at {shown} (" + absence_words(lookup) + ").",
                ),
            ),
        )
    if len(records) > 1:
        # RFC 8460 §3: when there is not exactly one record, senders assume no TLS-RPT at all.
        return TlsRptReport(
            name,
            records[0],
            (),
            (
                finding(
                    "tls_rpt.invalid",
                    f"{shown} has {len(records)} v=TLSRPTv1 records; senders then ignore them all "
                    "(RFC 8460 §3).",
                    record=" | ".join(records),
                    fix="Keep one record, with every report address in its rua= list.",
                ),
            ),
        )
    record = records[0]
    rua, problem = parse_tls_rpt_record(record)
    if problem:
        return TlsRptReport(
            name,
            record,
            rua,
            (finding("tls_rpt.invalid", f"The TLS-RPT record at {shown} {problem}.", record=record),),
        )
    return TlsRptReport(name, record, rua, ())


def parse_tls_rpt_record(record: str) -> tuple[tuple[str, ...], str | None]:
    """The rua= destinations, and what is wrong with the record (None when nothing is)."""
    fields = [part.strip() for part in record.split(";")][1:]
    rua_values = [f.partition("=")[2].strip() for f in fields if f.partition("=")[0].strip().lower() == "rua"]
    malformed = [f for f in fields if f and "=" not in f]
    if malformed:
        return (), f'has a field that is not name=value: "{malformed[0][:80]}"'
    if not rua_values:
        return (), "has no rua= (where reports go), which RFC 8460 §3 requires"
    if len(rua_values) > 1:
        return (), "has more than one rua= field"
    uris = tuple(u.strip() for u in rua_values[0].split(",") if u.strip())
    bad = [u for u in uris if not _RUA_URI.fullmatch(u)]
    if not uris or bad:
        shown = bad[0][:80] if bad else rua_values[0][:80]
        return uris, f'has a rua= destination that is not a mailto: address or an https: URL: "{shown}"'
    return uris, None
