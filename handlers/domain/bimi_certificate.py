"""The BIMI certificate (VMC or CMC) named by a record's `a=`: its chain, dates, domain and logotype.

A mark certificate is a stranger's PEM file: it is fetched through the one HTTPS client (capped,
no redirect followed) and parsed with `cryptography`. It counts only when it chains to a trusted
root (the roots of `DMARCBOT_CA_FILE` when it is set, else the Mark Verifying Authorities' roots
checkdmarc ships, since a system CA bundle holds none), is valid today, names the domain in its
subjectAltName and carries the logotype extension (RFC 3709) that holds the logo it vouches for.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession
from handlers.domain.findings import Finding, finding, temperror_finding
from handlers.https_fetch import HttpsClient, fetch, printable

# id-pe-logotype (RFC 3709 §4.1): the extension in which a mark certificate embeds the logo.
LOGOTYPE_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.12")
# The mark certificate's expiry is warned of a month ahead: renewing one needs the Mark Verifying
# Authority to re-check the mark, which takes longer than renewing a TLS certificate.
CERTIFICATE_WARNING = timedelta(days=30)
# Certificates read from one PEM file: a VMC chain is the leaf and one or two intermediates.
MAX_CHAIN_CERTIFICATES = 8
_MAX_CHAIN_DEPTH = 5


@dataclass(frozen=True, kw_only=True)
class BimiCertificate:
    """What `--json` shows of a mark certificate that could be read."""

    not_after: datetime
    issuer: str
    subject: str

    def to_json(self) -> dict[str, object]:
        return {
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "issuer": self.issuer,
            "subject": self.subject,
        }


@dataclass(frozen=True, kw_only=True)
class CertificateResult:
    """The certificate (None when it could not be read) and the findings about it."""

    certificate: BimiCertificate | None
    findings: tuple[Finding, ...]
    transient: bool = False  # the fetch could not reach the host: the certificate is unknown, not bad


async def check_certificate(
    session: DnsSession,
    client: HttpsClient,
    url: str,
    domain: str,
    accepted_names: frozenset[str],
    *,
    now: datetime | None = None,
) -> CertificateResult:
    """Fetch the PEM chain at `url` and judge it for `domain` (`accepted_names`: the names its
    subjectAltName may hold, the domain and its organizational domain)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    response = await fetch(client, session, host, path)
    if response.dns_outage is not None:
        return CertificateResult(certificate=None, findings=(temperror_finding(response.dns_outage),))
    if not response.ok:
        step = response.failed_step.value if response.failed_step else "fetch"
        return CertificateResult(
            certificate=None,
            findings=(
                finding(
                    "bimi.certificate_invalid",
                    f"The BIMI certificate at {url} could not be fetched: {response.failure} (step: {step}).",
                ),
            ),
            transient=response.transient,
        )
    roots = trusted_roots(client.ca_file)
    return judge_certificate(response.body, domain, accepted_names, roots, url=url, now=now)


def judge_certificate(
    pem: bytes,
    domain: str,
    accepted_names: frozenset[str],
    roots: tuple[x509.Certificate, ...],
    *,
    url: str = "",
    now: datetime | None = None,
) -> CertificateResult:
    """Every reason the PEM chain (served at `url`) is not a usable mark certificate for `domain`,
    in words."""
    now = now or datetime.now(UTC)
    what = f"The BIMI certificate at {url}" if url else "The BIMI certificate"
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return _invalid(what, "the file is not a PEM certificate chain")
    if len(chain) > MAX_CHAIN_CERTIFICATES:
        return _invalid(
            what, f"the file holds {len(chain)} certificates, more than a chain of {MAX_CHAIN_CERTIFICATES}"
        )
    leaf, intermediates = chain[0], chain[1:]
    certificate = BimiCertificate(
        not_after=leaf.not_valid_after_utc,
        issuer=printable(leaf.issuer.rfc4514_string(), 300),
        subject=printable(leaf.subject.rfc4514_string(), 300),
    )
    problems: list[str] = []
    if now < leaf.not_valid_before_utc:
        problems.append(f"it is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if now > leaf.not_valid_after_utc:
        problems.append(f"it expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    names = _san_names(leaf)
    if not names & {n.lower() for n in accepted_names}:
        shown = ", ".join(sorted(names)[:5]) or "no DNS name"
        problems.append(f"its subjectAltName names {printable(shown, 300)}, not {display_name(domain)}")
    try:
        leaf.extensions.get_extension_for_oid(LOGOTYPE_OID)
    except x509.ExtensionNotFound:
        problems.append(
            "it has no logotype extension (id-pe-logotype, 1.3.6.1.5.5.7.1.12), so it holds no logo"
        )
    chain_problem = _chain_problem(leaf, intermediates, roots, now)
    if chain_problem:
        problems.append(chain_problem)
    findings: list[Finding] = []
    if problems:
        findings.append(
            finding(
                "bimi.certificate_invalid",
                f"{what} is not usable, so receivers show no logo: " + "; ".join(problems) + ".",
            )
        )
    elif leaf.not_valid_after_utc - now < CERTIFICATE_WARNING:
        days = max(0, (leaf.not_valid_after_utc - now).days)
        findings.append(
            finding(
                "bimi.certificate_expiring",
                f"{what} expires on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in {days} "
                "day(s); then receivers stop showing the logo.",
            )
        )
    return CertificateResult(certificate=certificate, findings=tuple(findings))


def _chain_problem(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: tuple[x509.Certificate, ...],
    now: datetime,
) -> str | None:
    if not roots:
        return "no trusted root to check its chain against (the CA file holds no certificate)"
    # The leaf's own dates are judged above; the chain is checked at a moment the leaf was valid,
    # so an expired certificate is not also called untrusted.
    moment = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    # VMCs carry id-kp-BrandIndicatorforMessageIdentification, not serverAuth or clientAuth, and
    # critical extensions of their own: the Web PKI's extension rules are relaxed as checkdmarc does.
    leaf_policy = (
        ExtensionPolicy.permit_all()
        .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    )
    ca_policy = (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(moment.replace(tzinfo=None))
        .extension_policies(ee_policy=leaf_policy, ca_policy=ca_policy)
        .max_chain_depth(_MAX_CHAIN_DEPTH)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError:
        return "its chain does not lead to a trusted Mark Verifying Authority root"
    return None


def _san_names(certificate: x509.Certificate) -> set[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return set()
    names = extension.value.get_values_for_type(x509.DNSName)
    return {name.lower().rstrip(".") for name in names[:100]}


def _invalid(what: str, problem: str) -> CertificateResult:
    return CertificateResult(
        certificate=None,
        findings=(finding("bimi.certificate_invalid", f"{what} is not usable: {problem}."),),
    )


def trusted_roots(ca_file: str | None) -> tuple[x509.Certificate, ...]:
    """The roots a mark certificate must chain to: the configured CA file's, else the MVA roots
    checkdmarc ships (found without importing checkdmarc, which `check` never loads). Read again
    when the file changes, as the HTTPS client's TLS context is."""
    path: Path | None = Path(ca_file) if ca_file else None
    if path is None:
        spec = importlib.util.find_spec("checkdmarc")
        if spec is None or spec.origin is None:
            return ()
        path = Path(spec.origin).parent / "resources" / "MVACAs.pem"
    try:
        changed = path.stat().st_mtime_ns
    except OSError:
        return ()
    return _roots_in(str(path), changed)


@functools.lru_cache(maxsize=8)
def _roots_in(path: str, changed: int) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    except (OSError, ValueError):
        return ()
