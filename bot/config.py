"""Settings: read once from the environment into one frozen object, every problem reported at once."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.apply.providers import DnsProviders, ProvidersFileError, load_dns_providers
from handlers.dns.resolver import (
    DEFAULT_MAX_INFLIGHT,
    DnsSession,
    Nameserver,
    NameserverError,
    parse_nameservers,
)
from handlers.errors import ConfigurationError
from handlers.https_fetch import HttpsClient

if TYPE_CHECKING:
    from handlers.domain import smtp_probe

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DB = "./dmarcbot.db"
DEFAULT_PORT = 3000
DEFAULT_MONITOR_INTERVAL = 3600
DEFAULT_REPORTS_SILENCE_DAYS = 3  # receivers send daily: three days without one is news
DEFAULT_SMTP_PORT = 25  # RFC 5321 §4.5.4: where MX hosts receive mail; `check --smtp` probes it
IMAPS_PORT = 993  # IMAP over TLS (RFC 8314): the only way the poller reads the mailbox
APPROVER_ID = re.compile(r"[UWS][A-Z0-9]{2,}")  # a user (U…, W… in Enterprise Grid) or a user group (S…)
TEAM_ID = re.compile(r"T[A-Z0-9]{2,}")  # Slack workspace ids: T followed by upper-case letters and digits


class SettingsError(ConfigurationError):
    """One or more settings are wrong; the message lists every one and what would be right."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the process is configured with. Built by `from_env`, passed down explicitly."""

    # Secrets are left out of repr(), so a settings object in a log line or a traceback shows none.
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = SLACK_API_URL
    slack_client_id: str | None = None
    slack_client_secret: str | None = field(default=None, repr=False)
    db_path: str = DEFAULT_DB
    nameservers: tuple[Nameserver, ...] = ()
    dns_timeout: float = 2.0  # seconds per DNS attempt
    dns_max_inflight: int = DEFAULT_MAX_INFLIGHT  # queries in flight at once, per session
    port: int = DEFAULT_PORT
    log_level: str = "INFO"
    monitor_interval: int = DEFAULT_MONITOR_INTERVAL
    reports_silence_days: int = DEFAULT_REPORTS_SILENCE_DAYS
    imap_host: str | None = None
    imap_user: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    imap_folder: str = "INBOX"
    imap_cafile: str | None = None  # CA bundle to verify the IMAP server with (default: system)
    ephemeral_disk: bool = False  # Heroku's dyno disk is wiped at every deploy and restart
    default_team: str | None = None  # SLACK_TEAM_ID: the workspace CLI commands act for
    ca_file: str | None = None  # DMARCBOT_CA_FILE: CA bundle for HTTPS fetches (default: system)
    # DMARCBOT_FAILURES_KEEP_ADDRESSES: failure reports quote other people's mail, so the local
    # parts of addresses are redacted before they are stored unless the operator opts in.
    failures_keep_addresses: bool = False
    # DMARCBOT_SMTP_PORT: the port `check --smtp` probes (25, where MX hosts listen; tests use another)
    smtp_port: int = DEFAULT_SMTP_PORT
    # DMARCBOT_DNS_PROVIDERS: the zones fixes may be applied to (their secrets hidden from repr).
    dns_providers: DnsProviders = field(default_factory=DnsProviders)
    dns_providers_file: str | None = None
    # DMARCBOT_APPROVERS: the Slack user ids (U…, W…) and user-group ids (S…) who may approve an
    # Apply; empty: any member of the installing workspace. DMARCBOT_APPLY_TWO_PEOPLE: the person
    # who proposed a plan cannot approve it alone.
    approvers: tuple[str, ...] = ()
    apply_two_people: bool = True

    def dns_session(self) -> DnsSession:
        """A fresh DnsSession with these settings: one per check, re-check or monitor cycle."""
        return DnsSession(
            nameservers=self.nameservers, timeout=self.dns_timeout, max_inflight=self.dns_max_inflight
        )

    def https_client(self) -> HttpsClient:
        """The HTTPS client every fetch uses (the MTA-STS policy), with the configured CA bundle."""
        return HttpsClient(ca_file=self.ca_file)

    def smtp_prober(self) -> smtp_probe.SmtpProber:
        """The STARTTLS probe of `check --smtp`: the configured port, the HTTPS client's CA bundle."""
        from handlers.domain.smtp_probe import SmtpProber  # only `check --smtp` needs it

        return SmtpProber(tls=self.https_client(), port=self.smtp_port)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def oauth(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise SettingsError listing every problem."""
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def integer(name: str, default: int, low: int, high: int) -> int:
            text = get(name)
            if text is None:
                return default
            # isascii(): "²" passes isdigit() but int() refuses it
            if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
                problems.append(f"{name}={text!r} must be a whole number from {low} to {high}")
                return default
            return int(text)

        def boolean(name: str, default: bool) -> bool:
            text = (get(name) or str(default)).lower()
            if text not in ("true", "false"):
                problems.append(f"{name}={text[:40]!r} must be true or false")
                return default
            return text == "true"

        try:
            nameservers = parse_nameservers([get("DMARCBOT_NAMESERVERS") or ""])
        except NameserverError as error:
            problems.append(f"DMARCBOT_NAMESERVERS: {error}")
            nameservers = ()
        dns_timeout = 2.0
        timeout_text = get("DMARCBOT_DNS_TIMEOUT")
        if timeout_text is not None:
            try:
                dns_timeout = float(timeout_text)
                if not 0.05 <= dns_timeout <= 30:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"DMARCBOT_DNS_TIMEOUT={timeout_text!r} must be a number of seconds from 0.05 to 30"
                )
                dns_timeout = 2.0
        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if not isinstance(logging.getLevelName(log_level), int):
            problems.append(f"LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")
            log_level = "INFO"
        keep_addresses = boolean("DMARCBOT_FAILURES_KEEP_ADDRESSES", False)
        approvers = tuple(a.strip() for a in (get("DMARCBOT_APPROVERS") or "").split(",") if a.strip())
        wrong = [a for a in approvers if not APPROVER_ID.fullmatch(a)]
        if wrong:
            problems.append(
                f"DMARCBOT_APPROVERS: {', '.join(repr(a[:40]) for a in wrong[:5])} must be Slack user ids "
                "(U0123ABCD, W0123ABCD) or user-group ids (S0123ABCD), separated by commas"
            )
        two_people = boolean("DMARCBOT_APPLY_TWO_PEOPLE", True)
        api_url = get("SLACK_API_URL") or SLACK_API_URL
        if not api_url.startswith(("https://", "http://")):
            problems.append(f"SLACK_API_URL={api_url!r} must be an http(s) URL")
        if not api_url.endswith("/"):
            api_url += "/"  # slack_sdk appends the method name directly
        dns_providers = DnsProviders()
        providers_file = get("DMARCBOT_DNS_PROVIDERS")
        if providers_file is not None:
            try:
                dns_providers = load_dns_providers(providers_file, env)
            except ProvidersFileError as error:
                problems.append(str(error))
        settings = cls(
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_api_url=api_url,
            slack_client_id=get("SLACK_CLIENT_ID"),
            slack_client_secret=get("SLACK_CLIENT_SECRET"),
            db_path=get("DMARCBOT_DB") or DEFAULT_DB,
            nameservers=nameservers,
            dns_timeout=dns_timeout,
            dns_max_inflight=integer("DMARCBOT_DNS_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT, 1, 10000),
            port=integer("PORT", DEFAULT_PORT, 1, 65535),
            log_level=log_level,
            monitor_interval=integer("DMARCBOT_MONITOR_INTERVAL", DEFAULT_MONITOR_INTERVAL, 10, 7 * 86400),
            reports_silence_days=integer(
                "DMARCBOT_REPORTS_SILENCE_DAYS", DEFAULT_REPORTS_SILENCE_DAYS, 1, 366
            ),
            imap_host=get("DMARCBOT_IMAP_HOST"),
            imap_user=get("DMARCBOT_IMAP_USER"),
            imap_password=get("DMARCBOT_IMAP_PASSWORD"),
            imap_folder=get("DMARCBOT_IMAP_FOLDER") or "INBOX",
            imap_cafile=get("DMARCBOT_IMAP_CAFILE"),
            ephemeral_disk=bool(get("DYNO")),
            default_team=get("SLACK_TEAM_ID"),
            ca_file=get("DMARCBOT_CA_FILE"),
            failures_keep_addresses=keep_addresses,
            smtp_port=integer("DMARCBOT_SMTP_PORT", DEFAULT_SMTP_PORT, 1, 65535),
            dns_providers=dns_providers,
            dns_providers_file=providers_file,
            approvers=approvers,
            apply_two_people=two_people,
        )
        if settings.ca_file and not os.path.isfile(settings.ca_file):
            problems.append(f"DMARCBOT_CA_FILE={settings.ca_file!r} is not a file (a PEM CA bundle)")
        if settings.default_team is not None and not TEAM_ID.fullmatch(settings.default_team):
            problems.append(
                f"SLACK_TEAM_ID={settings.default_team!r} must be a workspace id like T0123ABCD "
                "(Slack: workspace settings, or the team_id of any request)"
            )
        if problems:
            raise SettingsError("; ".join(problems))
        return settings

    def serve_problems(self) -> list[str]:
        """What stops `dmarcbot serve` from starting with these settings (empty when it can)."""
        problems = []
        if self.socket_mode and not self.slack_app_token.startswith("xapp-"):  # type: ignore[union-attr]
            problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.slack_bot_token and not self.slack_bot_token.startswith("xoxb-"):
            problems.append(
                "SLACK_BOT_TOKEN must be a bot token starting with xoxb- "
                "(the app's OAuth & Permissions page, Bot User OAuth Token)"
            )
        if not self.oauth and not self.slack_bot_token:
            problems.append(
                "SLACK_BOT_TOKEN is not set (or set SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET for multi-workspace installs)"
            )
        if not self.socket_mode and not self.slack_signing_secret:
            problems.append(
                "SLACK_SIGNING_SECRET is not set: HTTP mode will not start without it, "
                "since requests could not be verified as coming from Slack"
            )
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            problems.append("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET must be set together")
        imap = {
            "DMARCBOT_IMAP_HOST": self.imap_host,
            "DMARCBOT_IMAP_USER": self.imap_user,
            "DMARCBOT_IMAP_PASSWORD": self.imap_password,
        }
        if any(imap.values()) and not all(imap.values()):  # the rua mailbox: all or nothing
            problems.append(
                "set DMARCBOT_IMAP_HOST, DMARCBOT_IMAP_USER and DMARCBOT_IMAP_PASSWORD "
                "together (missing: " + ", ".join(k for k, v in imap.items() if not v) + ")"
            )
        if self.imap_host:
            try:
                imap_address(self.imap_host)
            except SettingsError as error:
                problems.append(str(error))
        if self.imap_cafile and not os.path.isfile(self.imap_cafile):
            problems.append(f"DMARCBOT_IMAP_CAFILE={self.imap_cafile!r} is not a file (a PEM CA bundle)")
        return problems


def imap_address(host: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` -> (host, port); 993 (IMAP over TLS) by default."""
    match = re.fullmatch(
        r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?|([^:\s\[\]]+)(?::([0-9]{1,5}))?", host.strip()
    )
    if match is None:
        raise SettingsError(
            f"DMARCBOT_IMAP_HOST={host!r} is not host[:port] (like imap.example.com or imap.example.com:993)"
        )
    name = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or IMAPS_PORT)
    if not 0 < port < 65536:
        raise SettingsError(f"DMARCBOT_IMAP_HOST={host!r}: the port must be from 1 to 65535")
    return name, port
