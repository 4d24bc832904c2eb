"""The DNS providers file (DMARCBOT_DNS_PROVIDERS): read at start-up with the other settings, every
problem reported at once, secrets only named in the file and never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.apply.providers import RFC2136, ProvidersFileError, load_dns_providers
from bot.cli import main
from bot.config import Settings, SettingsError
from handlers.dns.resolver import Nameserver

TOKEN = "pdns-token-7d1f9a"
TSIG = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"

GOOD = """
[[zone]]
name = "Example.COM."
provider = "powerdns"
pdns_server = "http://127.0.0.1:8081"
auth_token_env = "PDNS_TOKEN"
nameservers = ["127.0.0.1:5300"]
ttl = 300

[[zone]]
name = "example.org"
provider = "rfc2136"
server = "127.0.0.1:5301"
tsig_name = "dmarcbot"
tsig_secret_env = "TSIG_SECRET"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return str(path)


def test_a_good_file_is_read_with_its_secrets(tmp_path: Path) -> None:
    env = {"DMARCBOT_DNS_PROVIDERS": write(tmp_path, GOOD), "PDNS_TOKEN": TOKEN, "TSIG_SECRET": TSIG}
    providers = Settings.from_env(env).dns_providers
    pdns = providers.for_name("_dmarc.example.com")
    assert pdns is not None and pdns.zone == "example.com" and pdns.provider == "powerdns"
    assert pdns.secrets["auth_token"].reveal() == TOKEN
    assert pdns.options == {"pdns_server": "http://127.0.0.1:8081"}
    assert pdns.nameservers == (Nameserver("127.0.0.1", 5300),) and pdns.ttl == 300
    bind = providers.for_name("example.org")
    assert bind is not None and bind.provider == RFC2136
    assert bind.secrets["tsig_secret"].reveal() == TSIG
    assert providers.for_name("example.net") is None  # not configured: the paste-and-Verify flow
    assert providers.for_name("notexample.com") is None


def test_no_file_named_means_no_zone() -> None:
    assert Settings.from_env({}).dns_providers.zones == ()


def test_a_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"DMARCBOT_DNS_PROVIDERS": missing, "PORT": "x"})
    assert f"DMARCBOT_DNS_PROVIDERS={missing!r} cannot be read" in str(error.value)
    assert "PORT='x'" in str(error.value)  # reported with the other settings, at once


def test_malformed_toml_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is not valid TOML"):
        Settings.from_env({"DMARCBOT_DNS_PROVIDERS": write(tmp_path, "[[zone]]\nname = example.com\n")})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[[zone]]
name = "example.com"
provider = "no-such-dns"

[[zone]]
name = "example.net"
provider = "cloudflare"
auth_token_env = "CF_TOKEN"

[[zone]]
provider = "rfc2136"
server = "127.0.0.1:53"

[[zone]]
name = "not a domain!"
provider = "powerdns"
"""
    with pytest.raises(ProvidersFileError) as caught:
        load_dns_providers(write(tmp_path, text), {})
    message = str(caught.value)
    assert "provider 'no-such-dns' is not rfc2136 nor a dns-lexicon provider" in message
    assert "auth_token_env names CF_TOKEN, which is not set in the environment" in message
    assert "name is missing" in message
    assert "rfc2136 needs tsig_name" in message and "rfc2136 needs tsig_secret_env" in message
    assert "'not a domain!' is not a domain name" in message


def test_a_file_without_zones_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvidersFileError, match=r"no \[\[zone\]\] table"):
        load_dns_providers(write(tmp_path, "title = 'dns'\n"), {})


def test_a_secret_written_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = f'[[zone]]\nname = "example.com"\nprovider = "powerdns"\nauth_token = "{TOKEN}"\n'
    with pytest.raises(ProvidersFileError) as caught:
        load_dns_providers(write(tmp_path, text), {})
    assert "auth_token looks like a credential" in str(caught.value)
    assert "auth_token_env" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_secrets_are_never_in_a_repr_nor_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"DMARCBOT_DNS_PROVIDERS": write(tmp_path, GOOD), "PDNS_TOKEN": TOKEN, "TSIG_SECRET": TSIG}
    settings = Settings.from_env(env)
    zone = settings.dns_providers.for_name("example.com")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("dmarcbot.test").info("settings %s zone %r", settings, zone)
    assert "Secret('PDNS_TOKEN')" in caplog.text  # the zone was logged, its secret by name only
    for shown in (repr(settings), str(zone), caplog.text):
        assert TOKEN not in shown and TSIG not in shown


def test_a_command_refuses_a_broken_providers_file_with_every_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "DMARCBOT_")):
            monkeypatch.delenv(name)
    text = '[[zone]]\nname = "example.com"\nprovider = "powerdns"\nauth_token_env = "UNSET_TOKEN_VAR"\n'
    monkeypatch.setenv("DMARCBOT_DNS_PROVIDERS", write(tmp_path, text))
    monkeypatch.setenv("DMARCBOT_DB", str(tmp_path / "db.sqlite"))
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert "UNSET_TOKEN_VAR, which is not set" in err and "Traceback" not in err


def test_the_approval_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"DMARCBOT_APPROVERS": "U0AAA1, S0GROUP1,W0GRID1"})
    assert settings.approvers == ("U0AAA1", "S0GROUP1", "W0GRID1") and settings.apply_two_people
    assert not Settings.from_env({"DMARCBOT_APPLY_TWO_PEOPLE": "false"}).apply_two_people
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"DMARCBOT_APPROVERS": "U0AAA1,@alice", "DMARCBOT_APPLY_TWO_PEOPLE": "maybe"})
    assert "'@alice' must be Slack user ids" in str(error.value)
    assert "DMARCBOT_APPLY_TWO_PEOPLE='maybe' must be true or false" in str(error.value)
