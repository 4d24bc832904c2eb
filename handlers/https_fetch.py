"""The one HTTPS client every fetch from a stranger's server goes through: verified, bounded, unredirected.

The host is resolved through the check's DnsSession (so a DNS outage stays an outage, and tests
reach their own servers through their own DNS), the certificate is verified against the system's
CA bundle or the one configured (`DMARCBOT_CA_FILE`, read by bot.config and passed in here),
redirects are never followed (RFC 8461 §3.3), the body is capped and the whole fetch is timed.
Every failure is a sentence naming the step that failed, never an exception's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from handlers.dns.resolver import DnsSession, Lookup
from handlers.limits import HTTPS_TIMEOUT, MAX_HTTPS_BODY, MAX_HTTPS_HEADERS

HTTPS_PORT = 443  # RFC 8461 §3.3 fixes the MTA-STS policy host's port; no URL names another

# OpenSSL's verify codes (x509_vfy.h) for the certificate failures a person can act on.
_CERTIFICATE_PROBLEMS = {
    9: "is not valid yet",
    10: "has expired",
    18: "is self-signed",
    19: "is signed by a CA that is not trusted",
    20: "is signed by a CA that is not trusted",
    21: "could not be checked against a trusted CA",
    62: "does not name the host",
}


def certificate_problem(error: ssl.SSLCertVerificationError) -> str:
    """What is wrong with a certificate, in words that follow "the certificate of HOST"."""
    return _CERTIFICATE_PROBLEMS.get(error.verify_code, "could not be verified")


class FetchStep(enum.Enum):
    """Where a fetch stopped: the words `mta_sts.policy_unreachable` and the like name."""

    DNS = "DNS"
    CONNECTION = "connection"
    CERTIFICATE = "TLS certificate"
    STATUS = "HTTP status"
    REDIRECT = "redirect"
    SIZE = "size"
    TIME = "time"


@dataclass(frozen=True)
class HttpsClient:
    """The limits of every HTTPS fetch. `ca_file` None means the system's CA bundle."""

    ca_file: str | None = None
    timeout: float = HTTPS_TIMEOUT
    max_body: int = MAX_HTTPS_BODY

    def tls_context(self) -> ssl.SSLContext:
        """The context every connection of this client verifies with. Reading a CA bundle takes
        tens of milliseconds, on the event loop: it is read once, and again when the file changes."""
        try:
            changed = os.stat(self.ca_file).st_mtime_ns if self.ca_file else 0
        except OSError:
            changed = 0  # ssl raises for a file it cannot read, and a raise is never cached
        return _tls_context(self.ca_file, changed)


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None, changed: int) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996: TLS 1.0 and 1.1 are deprecated
    return context


@dataclass(frozen=True, kw_only=True)
class HttpsResponse:
    """A fetch's outcome: the body when it succeeded, else the step that failed and why, in words."""

    url: str
    body: bytes = b""
    content_type: str = ""
    failed_step: FetchStep | None = None
    failure: str = ""
    dns_outage: Lookup | None = None  # the lookup that failed, when DNS could not answer at all
    certificate_expires: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    @property
    def transient(self) -> bool:
        """The server could not be reached or was too slow: what it serves is unknown, not changed,
        unlike an answer it gave (a status, a redirect, a certificate), which is its own state."""
        return self.failed_step in (FetchStep.CONNECTION, FetchStep.TIME)


async def fetch(client: HttpsClient, session: DnsSession, host: str, path: str) -> HttpsResponse:
    """GET https://host/path within the client's limits; never raises for what the server does."""
    url = f"https://{host}{path}"
    a, aaaa = await session.lookup_many([(host, "A"), (host, "AAAA")])
    addresses = [*a.records, *aaaa.records]
    if not addresses:
        outage = next((lookup for lookup in (a, aaaa) if lookup.is_outage), None)
        return HttpsResponse(
            url=url,
            failed_step=FetchStep.DNS,
            failure=f"{host} has no address: the {a.describe_failure()}"
            if outage is None
            else f"{host} could not be resolved: the {outage.describe_failure()}",
            dns_outage=outage,
        )
    try:
        async with asyncio.timeout(client.timeout):
            return await _get(client, url, host, path, addresses)
    except TimeoutError:
        return HttpsResponse(
            url=url,
            failed_step=FetchStep.TIME,
            failure=f"{host} did not answer within {client.timeout:g} seconds",
        )


async def _get(client: HttpsClient, url: str, host: str, path: str, addresses: list[str]) -> HttpsResponse:
    failure = HttpsResponse(url=url, failed_step=FetchStep.CONNECTION, failure=f"could not connect to {host}")
    for address in addresses[:4]:
        try:
            reader, writer = await asyncio.open_connection(
                address, HTTPS_PORT, ssl=client.tls_context(), server_hostname=host
            )
        except ssl.SSLCertVerificationError as error:
            problem = certificate_problem(error)
            return HttpsResponse(
                url=url,
                failed_step=FetchStep.CERTIFICATE,
                failure=f"the TLS certificate of {host} {problem}",
            )
        except ssl.SSLError:
            return HttpsResponse(
                url=url,
                failed_step=FetchStep.CERTIFICATE,
                failure=f"the TLS handshake with {host} ({shown_address(address)}) failed",
            )
        except ConnectionRefusedError:
            failure = HttpsResponse(
                url=url,
                failed_step=FetchStep.CONNECTION,
                failure=f"{host} ({shown_address(address)}) refused the connection on port {HTTPS_PORT}",
            )
            continue
        except OSError:
            failure = HttpsResponse(
                url=url,
                failed_step=FetchStep.CONNECTION,
                failure=f"{host} ({shown_address(address)}) could not be reached on port {HTTPS_PORT}",
            )
            continue
        try:
            return await _exchange(client, url, host, path, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return failure


async def _exchange(
    client: HttpsClient,
    url: str,
    host: str,
    path: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> HttpsResponse:
    expires = _certificate_expiry(writer)
    # HTTP/1.0: the body ends when the server closes, with no chunked encoding to undo.
    writer.write(
        f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: dmarcbot\r\nAccept: text/plain\r\n\r\n".encode()
    )
    lost = HttpsResponse(
        url=url, failed_step=FetchStep.CONNECTION, failure=f"{host} closed the connection before answering"
    )
    try:
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return HttpsResponse(
            url=url, failed_step=FetchStep.SIZE, failure=f"{host} sent response headers over the size limit"
        )
    except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
        return lost
    if len(head) > MAX_HTTPS_HEADERS:
        return HttpsResponse(
            url=url, failed_step=FetchStep.SIZE, failure=f"{host} sent response headers over the size limit"
        )
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return HttpsResponse(url=url, failed_step=FetchStep.STATUS, failure=f"{host} did not answer in HTTP")
    status = int(parts[1])
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if 300 <= status < 400:
        target = printable(headers.get("location", ""))
        where = f" to {target}" if target else ""
        return HttpsResponse(
            url=url,
            failed_step=FetchStep.REDIRECT,
            failure=f"{host} answered HTTP {status}, a redirect{where}, "
            "which RFC 8461 §3.3 forbids following",
        )
    if status != 200:
        return HttpsResponse(
            url=url, failed_step=FetchStep.STATUS, failure=f"{host} answered HTTP {status} instead of 200"
        )
    too_large = HttpsResponse(
        url=url,
        failed_step=FetchStep.SIZE,
        failure=f"the file at {url} is larger than {client.max_body // 1024} KB",
    )
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > client.max_body:
        return too_large
    try:
        body = await reader.read(client.max_body + 1)
        while body and len(body) <= client.max_body:
            more = await reader.read(client.max_body + 1 - len(body))
            if not more:
                break
            body += more
    except (OSError, ssl.SSLError):
        return lost
    if len(body) > client.max_body:
        return too_large
    return HttpsResponse(
        url=url,
        body=body,
        content_type=headers.get("content-type", ""),
        certificate_expires=expires,
    )


def _certificate_expiry(writer: asyncio.StreamWriter) -> datetime | None:
    ssl_object = writer.get_extra_info("ssl_object")
    certificate = ssl_object.getpeercert() if ssl_object is not None else None
    not_after = certificate.get("notAfter") if certificate else None
    if not isinstance(not_after, str):
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)


def shown_address(address: str) -> str:
    """An IP address as a sentence names it beside a port or a host: IPv6 in brackets."""
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def printable(text: str, limit: int = 200) -> str:
    """Text from a stranger (a header, a certificate name), cut to `limit` characters and stripped
    of control characters before it is quoted."""
    return "".join(c for c in text[:limit] if c.isprintable())
