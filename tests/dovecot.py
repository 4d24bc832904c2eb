"""A real IMAP server for the tests: Debian's Dovecot on a free loopback port, IMAP over TLS only,
with a certificate from a test CA made here, one user, maildir storage, all in a temporary folder.

Run as root (CI), Dovecot insists that its login processes and the mail owner are not root: it
then uses the package's `dovenull`/`dovecot` users, and the folder is made traversable for them.
Run as anyone else, everything runs as that user.
"""

from __future__ import annotations

import datetime
import imaplib
import ipaddress
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.dnstest.nsd import free_port

USER, PASSWORD = "rua@example.com", "report-secret"


def find_dovecot() -> str:
    """The `dovecot` binary, or a clear error saying how to install it."""
    found = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None
    )
    if found is None:
        raise RuntimeError(
            "the IMAP tests need Dovecot: install it with `apt-get install -y dovecot-imapd` (Debian/Ubuntu)"
        )
    return found


def _certificates(folder: Path) -> None:
    """ca.pem (the test CA), cert.pem and key.pem (127.0.0.1, signed by the CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dmarcbot test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


class DovecotServer:
    """`start()` it, `append()` mail, `mailbox()` to read a folder back, `stop()`."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: its parents are private to root, and Dovecot's unprivileged
        # processes must reach their sockets and the mail.
        self.root = Path(tempfile.mkdtemp(prefix="dmarcbot-dovecot-"))
        self.root.chmod(0o755)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.root / "ca.pem")

    @property
    def log_text(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> DovecotServer:
        binary = find_dovecot()
        _certificates(self.root)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(mode=0o755)
        me = pwd.getpwuid(os.getuid())
        if os.getuid() == 0:
            mail_user, internal, login = pwd.getpwnam("dovecot"), "dovecot", "dovenull"
            os.chown(self.root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        else:
            mail_user, internal, login = me, me.pw_name, me.pw_name
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        for _attempt in range(5):
            self.port = free_port()
            (self.root / "dovecot.conf").write_text(self._config(mail_user, internal, login))
            self.process = subprocess.Popen(
                [binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            if self._wait_ready():
                return self
            self.stop(remove=False)
        raise RuntimeError(f"Dovecot did not start:\n{self.log_text[-3000:]}")

    def _config(self, mail_user: pwd.struct_passwd, internal: str, login: str) -> str:
        root = self.root
        return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
auth_failure_delay = 0
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/mail/%n
}}
mail_location = maildir:{root}/mail/%n/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with self.connect():
                    return True
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.05)
        return False

    def connect(self) -> imaplib.IMAP4_SSL:
        """A logged-in IMAP connection for the test's own checks (TLS verified by the test CA)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=5)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, message: bytes, folder: str = "INBOX") -> None:
        """Deliver a message by IMAP APPEND."""
        with self.connect() as imap:
            kind, data = imap.append(folder, None, None, message)
            assert kind == "OK", data

    def mailbox(self, folder: str) -> list[bytes]:
        """Every message in `folder` (empty when it does not exist), in UID order."""
        with self.connect() as imap:
            kind, _ = imap.select(f'"{folder}"', readonly=True)
            if kind != "OK":
                return []
            _, found = imap.uid("SEARCH", "ALL")
            messages: list[bytes] = []
            for uid in (found[0] or b"").split():
                _, data = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                # a message the poller moved away between SEARCH and FETCH comes back without a body
                messages.extend(bytes(item[1]) for item in data if isinstance(item, tuple))
            return messages

    def stop(self, remove: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
