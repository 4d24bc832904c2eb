"""A real HTTPS server on a loopback address and port 443, with certificates from a test CA made at run time.

One server holds many virtual hosts: the certificate is chosen by the name the client asks for
(SNI) and the answer by the Host header, so a test gives each case (good, expired, wrong name,
redirecting, oversized) its own host name. Port 443 is the one RFC 8461 fixes for the MTA-STS
policy host, so the code under test connects exactly as it would on the internet; each server
takes its own random 127.x.y.z address (the tests run as root, and all of 127/8 is loopback).
"""

from __future__ import annotations

import datetime
import random
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Page:
    """What a virtual host answers to any GET."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})


class LocalCa:
    """A CA made at run time, and leaf certificates it signs, written as PEM files under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dmarcbot test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = workdir / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._count = 0
        self.last_leaf: x509.Certificate | None = None

    def leaf(self, names: list[str], *, days: float = 90, expired: bool = False) -> ssl.SSLContext:
        """A server context with a certificate for `names`, valid `days` more (or expired a day ago)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        not_after = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=days)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self._count += 1
        self.last_leaf = certificate  # for tests that pin it (DANE's TLSA records)
        cert_file = self.workdir / f"leaf{self._count}.pem"
        key_file = self.workdir / f"leaf{self._count}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


class HttpsServer:
    """Virtual hosts on `address`:443: `add(host, context, page)`; start with `with`."""

    def __init__(self, ca: LocalCa) -> None:
        self.ca = ca
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.pages: dict[str, Page] = {}
        self.default = ca.leaf(["default.invalid"])
        self.address = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, host: str, context: ssl.SSLContext, page: Page) -> None:
        self.contexts[host] = context
        self.pages[host] = page

    def __enter__(self) -> HttpsServer:
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = pages.get((self.headers.get("Host") or "").split(":")[0], Page(404, b"no such host"))
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = self._bind(Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.sni_callback = self._choose_certificate
        context.load_cert_chain(*self._default_files())
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _bind(self, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        for _ in range(50):
            address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
            try:
                server = ThreadingHTTPServer((address, 443), handler)
            except OSError:
                continue
            self.address = address
            return server
        raise RuntimeError("no loopback address free on port 443 (the HTTPS tests run as root)")

    def _choose_certificate(self, connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        connection.context = self.contexts.get(name or "", self.default)

    def _default_files(self) -> tuple[Path, Path]:
        # the listening context needs some certificate; the SNI callback swaps in the host's own
        return self.ca.workdir / "leaf1.pem", self.ca.workdir / "leaf1.key"
