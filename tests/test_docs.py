"""The README documents every /dmarc subcommand, every CLI command and every finding id, and the
manifest asks for exactly the scopes the app uses."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.slack.app import BOT_SCOPES, FEATURES
from bot.slack.features import gather
from handlers.domain.findings import CATALOG

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MANIFEST = json.loads((ROOT / "manifest.json").read_text())


def cli_commands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_readme_starts_with_a_quick_start() -> None:
    first_section = re.search(r"^## (.+)$", README, re.MULTILINE)
    assert first_section is not None and first_section.group(1) == "Quick start"
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "./bin/dmarcbot check" in quick_start
    assert "./bin/test" in quick_start


@pytest.mark.parametrize("name", sorted(row.name for row in gather(FEATURES).router.rows))
def test_every_slash_subcommand_is_documented(name: str) -> None:
    assert f"`/dmarc {name}" in README, f"/dmarc {name} is missing from the README"


@pytest.mark.parametrize("name", cli_commands())
def test_every_cli_command_is_documented(name: str) -> None:
    assert f"`dmarcbot {name}" in README, f"dmarcbot {name} is missing from the README"


@pytest.mark.parametrize("finding_id", sorted(CATALOG))
def test_every_finding_id_is_in_the_findings_table(finding_id: str) -> None:
    assert f"| `{finding_id}` |" in README


def test_manifest_scopes_are_the_ones_the_app_asks_for() -> None:
    assert MANIFEST["oauth_config"]["scopes"]["bot"] == BOT_SCOPES


def test_manifest_usage_hint_names_the_main_subcommands() -> None:
    (command,) = MANIFEST["features"]["slash_commands"]
    assert command["command"] == "/dmarc"
    for name in ("check", "why", "help"):
        assert name in command["usage_hint"]


def test_manifest_urls_all_point_at_the_events_path() -> None:
    urls = [
        MANIFEST["features"]["slash_commands"][0]["url"],
        MANIFEST["settings"]["event_subscriptions"]["request_url"],
        MANIFEST["settings"]["interactivity"]["request_url"],
    ]
    assert all(url.endswith("/slack/events") for url in urls)


def test_procfile_runs_serve() -> None:
    assert (ROOT / "Procfile").read_text().strip() == "web: dmarcbot serve"


def test_app_json_declares_every_required_setting() -> None:
    app = json.loads((ROOT / "app.json").read_text())
    assert app["env"]["SLACK_SIGNING_SECRET"]["required"] is True
    assert "DMARCBOT_DB" in app["env"]


def test_every_cause_id_is_in_the_causes_table() -> None:
    from handlers.message.verdict import CAUSES

    for cause_id in CAUSES:
        assert f"| `{cause_id}` |" in README, f"{cause_id} is missing from the README"


def test_every_fixable_finding_is_listed_as_fixable() -> None:
    from handlers.fixes.records import fix_kind

    fixable = README.split("Fixable finding ids:", 1)[1].split("\n\n", 1)[0]
    for finding_id in CATALOG:
        assert (f"`{finding_id}`" in fixable) == (fix_kind(finding_id) is not None), finding_id
