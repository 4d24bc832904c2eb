"""The BIMI part of a domain check: the `default._bimi` record, DMARC at enforcement, and the logo.

Mailbox providers show a domain's logo only when its mail is protected by DMARC at enforcement, so
the record is judged together with the DMARC policy. The logo is fetched through the one HTTPS
client (handlers.https_fetch), capped at the BIMI size, and parsed with defusedxml: it is a
stranger's XML, so no entity is expanded and no external DTD is read.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession
from handlers.domain.bimi_certificate import BimiCertificate, CertificateResult, check_certificate
from handlers.domain.dmarc import DmarcReport, check_dmarc
from handlers.domain.dmarc_discovery import organizational_domain
from handlers.domain.findings import Finding, absence_words, finding, temperror_finding
from handlers.https_fetch import FetchStep, HttpsClient, HttpsResponse, fetch
from handlers.limits import MAX_BIMI_LOGO_BYTES

SELECTOR = "default"  # the selector receivers use when a message names none (BIMI draft §4.2)
# The record starts with its version, exactly so; other TXT records at the name are not BIMI.
_VERSION = re.compile(r"v=BIMI1[ \t]*(;|$)")
_SVG = "{http://www.w3.org/2000/svg}"
_ENFORCED = ("quarantine", "reject")


@dataclass(frozen=True, kw_only=True)
class BimiReport:
    """The record at `default._bimi.DOMAIN`, its logo address, and the findings of both."""

    domain: str
    record: str | None
    logo_url: str | None
    findings: tuple[Finding, ...]
    certificate_url: str | None = None
    certificate: BimiCertificate | None = None  # the mark certificate at a=, when it could be read
    # the logo's or the certificate's host could not be reached or timed out: unknown, not broken
    fetch_unknown: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "record": self.record,
            "logo_url": self.logo_url,
            "certificate": self.certificate.to_json() if self.certificate else None,
        }


async def check_bimi(session: DnsSession, domain: str, client: HttpsClient) -> BimiReport:
    """Read the BIMI record; when it names a logo, check the DMARC policy and the logo concurrently."""
    name = f"{SELECTOR}._bimi.{domain}"
    shown = f"{SELECTOR}._bimi.{display_name(domain)}"
    lookup = await session.lookup(name, "TXT")
    if lookup.is_outage:
        return BimiReport(domain=domain, record=None, logo_url=None, findings=(temperror_finding(lookup),))
    records = [r for r in lookup.records if _VERSION.match(r)]
    if not records:
        missing = finding("bimi.missing", f"No v=BIMI1 record at {shown} ({absence_words(lookup)}).")
        return BimiReport(domain=domain, record=None, logo_url=None, findings=(missing,))
    if len(records) > 1:
        invalid = finding(
            "bimi.invalid",
            f"{shown} has {len(records)} v=BIMI1 records; receivers then show no logo.",
            record="\n".join(records[:4]),
        )
        return BimiReport(domain=domain, record=records[0], logo_url=None, findings=(invalid,))
    record = records[0]
    logo_url, problem = parse_record(record)
    report = BimiReport(domain=domain, record=record, logo_url=logo_url, findings=())
    if problem:
        invalid = finding("bimi.invalid", f"The BIMI record at {shown} {problem}.", record=record)
        return replace(report, findings=(invalid,))
    if logo_url is None:
        return report  # a declination record (l= empty): the domain asks for no logo
    certificate_url = record_certificate_url(record)
    enforcement, logo, certificate = await asyncio.gather(
        _enforcement_problem(session, domain),
        _logo_problem(session, client, logo_url),
        _certificate(session, client, domain, certificate_url),
    )
    logo_finding, logo_transient = logo
    findings = (*(f for f in (enforcement, logo_finding) if f is not None), *certificate.findings)
    return replace(
        report,
        findings=findings,
        certificate_url=certificate_url,
        certificate=certificate.certificate,
        fetch_unknown=logo_transient or certificate.transient,
    )


def parse_record(record: str) -> tuple[str | None, str | None]:
    """The logo URL (None for an empty l=), and what is wrong with the record (None when nothing)."""
    tags, problem = _tags(record)
    if problem:
        return None, problem
    if "l" not in tags:
        return None, "has no l= (the logo's address), which every BIMI record needs"
    logo = tags["l"]
    if logo and not _https_url(logo):
        return None, f'has l="{logo[:80]}", which is not an https:// URL'
    certificate = tags.get("a", "")
    if certificate and not _https_url(certificate):
        return None, f'has a="{certificate[:80]}", which is not an https:// URL'
    return logo or None, None


def record_certificate_url(record: str) -> str | None:
    """The a= address of the mark certificate (VMC or CMC) in a valid record, None when it has none."""
    tags, _ = _tags(record)
    return tags.get("a") or None


def _tags(record: str) -> tuple[dict[str, str], str | None]:
    tags: dict[str, str] = {}
    for field in (part.strip() for part in record.split(";")[1:]):
        if not field:
            continue
        key, equals, value = field.partition("=")
        if not equals:
            return tags, f'has a field that is not name=value: "{field[:80]}"'
        key = key.strip().lower()
        if key in tags:
            return tags, f"has more than one {key}= field"
        tags[key] = value.strip()
    return tags, None


def _https_url(text: str) -> bool:
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        return False
    return parts.scheme.lower() == "https" and bool(parts.hostname) and port in (None, 443)


async def _enforcement_problem(session: DnsSession, domain: str) -> Finding | None:
    """`bimi.dmarc_not_enforced` unless the policy for the domain and for its organizational domain
    is quarantine or reject with no t=y: receivers show a logo only for mail DMARC protects."""
    dmarc, org = await asyncio.gather(check_dmarc(session, domain), organizational_domain(session, domain))
    reports = [(domain, dmarc)]
    if org.name is not None and org.name != domain:
        reports.append((org.name, await check_dmarc(session, org.name)))
    for name, report in reports:
        if report.record is None and any(f.id == "dns.temperror" for f in report.findings):
            return None  # an outage, reported by the DMARC part: unknown, not unenforced
        problem = not_enforced(report)
        if problem:
            which = "" if name == domain else f"its organizational domain {display_name(name)}: "
            return finding(
                "bimi.dmarc_not_enforced",
                f"{display_name(domain)} publishes a BIMI record, but {which}{problem}, so receivers "
                "show no logo.",
                record=report.record.raw if report.record else None,
            )
    return None


def not_enforced(report: DmarcReport) -> str | None:
    """Why the DMARC policy is not at the enforcement BIMI needs, in words (None: it is)."""
    record = report.record
    if record is None or not record.usable:
        return "there is no usable DMARC record"
    if record.testing:
        return "the DMARC record has t=y (testing), which lowers the policy one step"
    if report.policy not in _ENFORCED:
        return f"the DMARC policy is {report.policy}, not quarantine or reject"
    return None


async def _certificate(
    session: DnsSession, client: HttpsClient, domain: str, url: str | None
) -> CertificateResult:
    """The mark certificate's findings; a record without a= has none to judge (it is optional)."""
    if url is None:
        return CertificateResult(certificate=None, findings=())
    org = await organizational_domain(session, domain)
    # the certificate may name the domain or the organizational domain whose record applies
    accepted = frozenset(n for n in (domain, org.name) if n)
    return await check_certificate(session, client, url, domain, accepted)


async def _logo_problem(session: DnsSession, client: HttpsClient, url: str) -> tuple[Finding | None, bool]:
    """The logo's finding, and whether its fetch failed only for want of reaching the host."""
    response, problem = await _fetch_logo(session, client, url)
    return problem, response.transient


async def _fetch_logo(
    session: DnsSession, client: HttpsClient, url: str
) -> tuple[HttpsResponse, Finding | None]:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # the logo's own cap: a larger file is refused by receivers, so it is not read further
    response = await fetch(replace(client, max_body=MAX_BIMI_LOGO_BYTES), session, host, path)
    if response.dns_outage is not None:
        return response, temperror_finding(response.dns_outage)
    if response.failed_step is FetchStep.SIZE and "headers" not in response.failure:
        return response, finding(
            "bimi.logo_invalid",
            f"The BIMI logo at {url} is larger than {MAX_BIMI_LOGO_BYTES // 1024} KB, the most an "
            "SVG Tiny PS logo may be.",
        )
    if not response.ok:
        step = response.failed_step.value if response.failed_step else "fetch"
        return response, finding(
            "bimi.logo_unreachable",
            f"The BIMI logo at {url} could not be fetched: {response.failure} (step: {step}).",
        )
    problems = logo_problems(response.body)
    if problems:
        return response, finding(
            "bimi.logo_invalid", f"The BIMI logo at {url} is not SVG Tiny PS: " + "; ".join(problems) + "."
        )
    return response, None


def logo_problems(body: bytes) -> list[str]:
    """What keeps `body` from being an SVG Tiny PS logo (the BIMI profile's basics), in words."""
    if len(body) > MAX_BIMI_LOGO_BYTES:
        return [f"it is larger than {MAX_BIMI_LOGO_BYTES // 1024} KB"]
    try:
        root = defusedxml.ElementTree.fromstring(body)
    except defusedxml.DefusedXmlException:
        return ["it declares XML entities or external references, which a logo must not"]
    except (ElementTree.ParseError, ValueError):
        return ["it is not well-formed XML"]
    if root.tag != f"{_SVG}svg":
        return ["its root element is not <svg> in the SVG namespace"]
    problems = []
    profile = root.get("baseProfile")
    if profile != "tiny-ps":
        problems.append(f'its <svg> has baseProfile="{(profile or "")[:20]}", not "tiny-ps"')
    names = {_local(element.tag) for element in root.iter()}
    if "script" in names:
        problems.append("it holds a <script>, which SVG Tiny PS forbids")
    if "foreignObject" in names:
        problems.append("it holds a <foreignObject>, which SVG Tiny PS forbids")
    if "title" not in names:
        problems.append("it has no <title>, which SVG Tiny PS requires")
    external = [
        value
        for element in root.iter()
        for attribute, value in element.attrib.items()
        if _local(attribute) == "href" and value.strip().lower().startswith(("http:", "https:", "//"))
    ]
    if external:
        problems.append(
            f'it refers to an external resource ("{external[0][:80]}"), which SVG Tiny PS forbids'
        )
    problems += _view_box_problems(root.get("viewBox"))
    return problems


def _view_box_problems(view_box: str | None) -> list[str]:
    if view_box is None:
        return ["it has no viewBox, so it cannot be shown as a square"]
    try:
        numbers = [float(n) for n in view_box.replace(",", " ").split()]
    except ValueError:
        numbers = []
    if len(numbers) != 4 or numbers[2] <= 0 or numbers[3] <= 0:
        return [f'its viewBox "{view_box[:40]}" is not four numbers with a positive width and height']
    if numbers[2] != numbers[3]:
        return [f"its viewBox is {numbers[2]:g}×{numbers[3]:g}, not square"]
    return []


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
