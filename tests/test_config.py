"""Settings: read once from the environment, every problem reported together; `dmarcbot serve`
refuses to start, with the reasons, when the settings cannot work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_BAD_INPUT
from bot.config import DEFAULT_DB, DEFAULT_PORT, SLACK_API_URL, Settings, SettingsError
from handlers.dns.resolver import Nameserver

HTTP_ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "secret"}


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings.slack_api_url == SLACK_API_URL
    assert settings.db_path == DEFAULT_DB
    assert settings.port == DEFAULT_PORT
    assert settings.log_level == "INFO"
    assert settings.nameservers == ()
    assert not settings.socket_mode and not settings.oauth and not settings.ephemeral_disk


def test_every_setting_is_read() -> None:
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": " xoxb-1 ",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9999/api",
            "SLACK_CLIENT_ID": "1.2",
            "SLACK_CLIENT_SECRET": "cs",
            "DMARCBOT_DB": "/data/bot.db",
            "DMARCBOT_NAMESERVERS": "127.0.0.1:5353, 192.0.2.53",
            "PORT": "8080",
            "LOG_LEVEL": "debug",
            "DYNO": "web.1",
        }
    )
    assert settings.slack_bot_token == "xoxb-1"  # surrounding blanks dropped
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"  # slack_sdk appends the method
    assert settings.db_path == "/data/bot.db"
    assert settings.nameservers == (Nameserver("127.0.0.1", 5353), Nameserver("192.0.2.53", 53))
    assert settings.port == 8080
    assert settings.log_level == "DEBUG"
    assert settings.socket_mode and settings.oauth and settings.ephemeral_disk


def test_blank_values_count_as_unset() -> None:
    settings = Settings.from_env({"SLACK_BOT_TOKEN": "   ", "PORT": "", "DMARCBOT_DB": " "})
    assert settings.slack_bot_token is None
    assert settings.port == DEFAULT_PORT
    assert settings.db_path == DEFAULT_DB


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "PORT": "eighty",
                "LOG_LEVEL": "loud",
                "SLACK_API_URL": "ftp://x",
                "DMARCBOT_NAMESERVERS": "127.0.0.1:99999",
                "DMARCBOT_MONITOR_INTERVAL": "5",
            }
        )
    message = str(raised.value)
    for part in (
        "PORT='eighty' must be a whole number from 1 to 65535",
        "LOG_LEVEL='LOUD' must be DEBUG, INFO, WARNING or ERROR",
        "SLACK_API_URL='ftp://x' must be an http(s) URL",
        "DMARCBOT_NAMESERVERS:",
        "DMARCBOT_MONITOR_INTERVAL='5' must be a whole number from 10 to 604800",
    ):
        assert part in message


@pytest.mark.parametrize("port", ["0", "65536", "-1", "3000.0", "²", "0x50"])
def test_bad_port_is_a_settings_error(port: str) -> None:
    """Never a bare ValueError or a traceback: `²` passes str.isdigit() but not int()."""
    with pytest.raises(SettingsError, match="PORT="):
        Settings.from_env({"PORT": port})


SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-bot-secret-1",
    "SLACK_SIGNING_SECRET": "signing-secret-2",
    "SLACK_APP_TOKEN": "xapp-app-secret-3",
    "SLACK_CLIENT_SECRET": "client-secret-4",
    "DMARCBOT_IMAP_PASSWORD": "hunter2",
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_secret_is_in_repr(name: str) -> None:
    settings = Settings.from_env({**SECRETS, "SLACK_CLIENT_ID": "1.2"})
    shown = repr(settings)
    assert "slack_client_id='1.2'" in shown  # the repr still shows what is not secret
    assert SECRETS[name] not in shown


def test_from_env_reads_only_the_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-process")
    assert Settings.from_env({}).slack_bot_token is None


# ------------------------------------------------------------------------------- serve_problems


def problems(env: dict[str, str]) -> list[str]:
    return Settings.from_env(env).serve_problems()


def test_http_mode_with_token_and_secret_can_start() -> None:
    assert problems(HTTP_ENV) == []


def test_http_mode_refuses_without_signing_secret() -> None:
    [problem] = problems({"SLACK_BOT_TOKEN": "xoxb-1"})
    assert problem.startswith("SLACK_SIGNING_SECRET is not set: HTTP mode will not start")


def test_socket_mode_needs_no_signing_secret() -> None:
    assert problems({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1-A-1-x"}) == []


def test_socket_mode_needs_an_app_level_token() -> None:
    [problem] = problems({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong"})
    assert "SLACK_APP_TOKEN must be an app-level token starting with xapp-" in problem


def test_oauth_replaces_the_bot_token() -> None:
    assert (
        problems({"SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "cs"}) == []
    )


def test_every_serve_problem_at_once() -> None:
    found = problems({"SLACK_CLIENT_ID": "1.2"})
    assert len(found) == 3
    assert any(p.startswith("SLACK_BOT_TOKEN is not set") for p in found)
    assert any(p.startswith("SLACK_SIGNING_SECRET is not set") for p in found)
    assert "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET must be set together" in found


# ------------------------------------------------------------------------------- dmarcbot serve


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting from the developer's or CI's environment leaks into the test."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "DMARCBOT_")) or name in ("PORT", "LOG_LEVEL", "DYNO"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_serve_without_settings_exits_2_with_every_reason(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve"]) == EXIT_BAD_INPUT == 2
    err = capsys.readouterr().err
    assert err.startswith("dmarcbot serve: cannot start: ")
    assert "SLACK_BOT_TOKEN is not set" in err
    assert "SLACK_SIGNING_SECRET is not set" in err


def test_serve_http_without_signing_secret_exits_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "SLACK_SIGNING_SECRET is not set" in err
    assert "SLACK_BOT_TOKEN" not in err


def test_serve_with_bad_values_exits_2_listing_them(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**HTTP_ENV, "PORT": "http", "LOG_LEVEL": "chatty"}.items():
        clean_env.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "PORT='http'" in err and "LOG_LEVEL='CHATTY'" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------- start-up checks


def test_malformed_tokens_team_and_mailbox_are_reported_together(tmp_path: Path) -> None:
    found = problems(
        {
            "SLACK_BOT_TOKEN": "xoxp-a-user-token",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_APP_TOKEN": "xoxb-not-app-level",
            "DMARCBOT_IMAP_HOST": "h:abc",
            "DMARCBOT_IMAP_USER": "u",
            "DMARCBOT_IMAP_PASSWORD": "p",
            "DMARCBOT_IMAP_CAFILE": str(tmp_path / "missing-ca.pem"),
        }
    )
    assert len(found) == 4, found
    assert any(p.startswith("SLACK_BOT_TOKEN must be a bot token starting with xoxb-") for p in found)
    assert "SLACK_APP_TOKEN must be an app-level token starting with xapp-" in found
    assert any(p.startswith("DMARCBOT_IMAP_HOST='h:abc' is not host[:port]") for p in found)
    assert (
        f"DMARCBOT_IMAP_CAFILE={str(tmp_path / 'missing-ca.pem')!r} is not a file (a PEM CA bundle)" in found
    )


def test_an_existing_ca_file_and_a_good_mailbox_address_pass(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "DMARCBOT_IMAP_HOST": "imap.example.com:993",
        "DMARCBOT_IMAP_USER": "u",
        "DMARCBOT_IMAP_PASSWORD": "p",
        "DMARCBOT_IMAP_CAFILE": str(ca_file),
    }
    assert problems(env) == []


@pytest.mark.parametrize("team", ["x1", "t0123", "T", "C0123ABCD", "T01 23"])
def test_a_team_id_that_is_not_a_workspace_id_is_refused(team: str) -> None:
    with pytest.raises(SettingsError, match=r"SLACK_TEAM_ID=.* must be a workspace id like T0123ABCD"):
        Settings.from_env({"SLACK_TEAM_ID": team})


def test_a_workspace_id_is_accepted() -> None:
    assert Settings.from_env({"SLACK_TEAM_ID": "T0123ABCD"}).default_team == "T0123ABCD"


@pytest.mark.parametrize("value", ["0", "367", "three", "2.5", "-1"])
def test_reports_silence_days_is_validated(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DMARCBOT_REPORTS_SILENCE_DAYS": value})
    assert f"DMARCBOT_REPORTS_SILENCE_DAYS={value!r} must be a whole number from 1 to 366" in str(
        raised.value
    )


def test_reports_silence_days_defaults_to_three() -> None:
    assert Settings.from_env({}).reports_silence_days == 3
    assert Settings.from_env({"DMARCBOT_REPORTS_SILENCE_DAYS": "7"}).reports_silence_days == 7


def test_the_smtp_probe_port_is_25_unless_set() -> None:
    assert Settings.from_env({}).smtp_prober().port == 25
    assert Settings.from_env({"DMARCBOT_SMTP_PORT": "2525"}).smtp_prober().port == 2525
    with pytest.raises(
        SettingsError, match="DMARCBOT_SMTP_PORT='smtp' must be a whole number from 1 to 65535"
    ):
        Settings.from_env({"DMARCBOT_SMTP_PORT": "smtp"})
