"""Settings: read once from the environment into one frozen object, every problem reported at once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from handlers.dns.resolver import DnsSession, Nameserver, NameserverError, parse_nameservers

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DB = "./dmarcbot.db"
DEFAULT_PORT = 3000
DEFAULT_MONITOR_INTERVAL = 3600


class SettingsError(ValueError):
    """One or more settings are wrong; the message lists every one and what would be right."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the process is configured with. Built by `from_env`, passed down explicitly."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = SLACK_API_URL
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    db_path: str = DEFAULT_DB
    nameservers: tuple[Nameserver, ...] = ()
    dns_timeout: float = 2.0  # seconds per DNS attempt
    port: int = DEFAULT_PORT
    log_level: str = "INFO"
    monitor_interval: int = DEFAULT_MONITOR_INTERVAL
    imap_host: str | None = None
    imap_user: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    imap_folder: str = "INBOX"
    imap_cafile: str | None = None  # CA bundle to verify the IMAP server with (default: system)
    ephemeral_disk: bool = False  # Heroku's dyno disk is wiped at every deploy and restart
    default_team: str | None = None  # SLACK_TEAM_ID: the workspace CLI commands act for

    def dns_session(self) -> DnsSession:
        """A fresh DnsSession with these settings: one per check, re-check or monitor cycle."""
        return DnsSession(nameservers=self.nameservers, timeout=self.dns_timeout)

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
        api_url = get("SLACK_API_URL") or SLACK_API_URL
        if not api_url.startswith(("https://", "http://")):
            problems.append(f"SLACK_API_URL={api_url!r} must be an http(s) URL")
        if not api_url.endswith("/"):
            api_url += "/"  # slack_sdk appends the method name directly
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
            port=integer("PORT", DEFAULT_PORT, 1, 65535),
            log_level=log_level,
            monitor_interval=integer("DMARCBOT_MONITOR_INTERVAL", DEFAULT_MONITOR_INTERVAL, 10, 7 * 86400),
            imap_host=get("DMARCBOT_IMAP_HOST"),
            imap_user=get("DMARCBOT_IMAP_USER"),
            imap_password=get("DMARCBOT_IMAP_PASSWORD"),
            imap_folder=get("DMARCBOT_IMAP_FOLDER") or "INBOX",
            imap_cafile=get("DMARCBOT_IMAP_CAFILE"),
            ephemeral_disk=bool(get("DYNO")),
            default_team=get("SLACK_TEAM_ID"),
        )
        if problems:
            raise SettingsError("; ".join(problems))
        return settings

    def serve_problems(self) -> list[str]:
        """What stops `dmarcbot serve` from starting with these settings (empty when it can)."""
        problems = []
        if self.socket_mode and not self.slack_app_token.startswith("xapp-"):  # type: ignore[union-attr]
            problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
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
        if any(imap.values()) and not all(imap.values()):  # issue 7: the rua mailbox
            problems.append(
                "set DMARCBOT_IMAP_HOST, DMARCBOT_IMAP_USER and DMARCBOT_IMAP_PASSWORD "
                "together (missing: " + ", ".join(k for k, v in imap.items() if not v) + ")"
            )
        return problems
