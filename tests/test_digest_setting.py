"""`dmarcbot digest` and `/dmarc digest`: a watch's digest setting, stored on the watch in a real
database file, shown by `list`; through the real entry point and the app's real HTTP endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_BAD_INPUT, EXIT_OK
from bot.store.database import Database
from bot.store.outbox import DIGEST_KIND, NewAlert
from bot.store.stores import Stores, open_stores
from tests.dnstest import NsdServer
from tests.slackapp import RunningApp
from tests.slackstub import SlackStandIn

DOMAIN = "example.test"
AppFactory = Callable[..., RunningApp]


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "cli.db")
    for name in ("SLACK_TEAM_ID", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN", "DYNO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DMARCBOT_DB", path)
    stores = open_stores(path)  # migrated, as the command line would find it
    try:
        stores.watches.add_watch("T1", "C0ALERTS", DOMAIN, [], "U1")
    finally:
        stores.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def listed_digest(capsys: pytest.CaptureFixture[str]) -> object:
    code, out, _ = run(capsys, "list", "--json", "--team", "T1")
    assert code == EXIT_OK
    (watch,) = json.loads(out)
    return watch["digest"]


def test_digest_is_set_listed_and_turned_off(db_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert listed_digest(capsys) is None  # a watch without a digest
    code, out, _ = run(capsys, "digest", DOMAIN, "--every", "weekly", "--team", "T1")
    assert code == EXIT_OK
    assert f"{DOMAIN} (team T1) gets a weekly digest in channel C0ALERTS" in out
    assert listed_digest(capsys) == "weekly"
    code, out, _ = run(capsys, "list", "--team", "T1")
    assert "DIGEST" in out.splitlines()[0] and out.splitlines()[1].rstrip().endswith("weekly")
    assert run(capsys, "digest", "Example.TEST.", "--every", "DAILY")[0] == EXIT_OK  # the only team
    assert listed_digest(capsys) == "daily"
    code, out, _ = run(capsys, "digest", DOMAIN, "--every", "off", "--team", "T1")
    assert code == EXIT_OK and f"No more digests of {DOMAIN} for team T1." in out
    assert listed_digest(capsys) is None


def test_turning_a_digest_off_drops_the_one_not_yet_posted(
    db_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "digest", DOMAIN, "--every", "daily")[0] == EXIT_OK
    stores = Stores.over(Database(db_path))
    try:
        for kind in (DIGEST_KIND, "changed"):
            alert = NewAlert(
                channel_id="C0ALERTS",
                domain=DOMAIN,
                kind=kind,
                dedupe_key=kind,
                text=kind,
                blocks=[],
                digest_block={},
            )
            stores.outbox.add_alerts("T1", [alert])
        assert run(capsys, "digest", DOMAIN, "--every", "off")[0] == EXIT_OK
        assert [a.kind for a in stores.outbox.pending_alerts("T1")] == ["changed"]  # alerts stay
    finally:
        stores.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["digest", "other.test", "--every", "daily", "--team", "T1"],
            "other.test is not watched for team T1",
        ),
        (["digest", "other.test", "--every", "daily", "--team", "T1"], "watch it first"),
        (
            ["digest", DOMAIN, "--every", "hourly"],
            "'hourly' is not a digest schedule: give daily, weekly or off",
        ),
        (["digest", DOMAIN], "--every"),
        (["digest", "not a domain", "--every", "daily"], "not a domain"),
        (["digest", DOMAIN, "--every", "daily", "--team", "T2"], "is not watched for team T2"),
    ],
)
def test_digest_refuses_bad_input_saying_what_is_right(
    db_path: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_BAD_INPUT and out == ""
    assert message in err and "Traceback" not in err
    assert listed_digest(capsys) is None  # nothing changed


# -- Slack --------------------------------------------------------------------------------------


@pytest.fixture
def app(make_app: AppFactory, nsd: NsdServer) -> RunningApp:
    running = make_app(nsd)
    stores = Stores.over(Database(running.settings.db_path))
    try:
        stores.watches.add_watch("T1", "C1", DOMAIN, [], "U1")
        stores.watches.add_watch("T2", "C2", "other.test", [], "U2")  # another installation's
    finally:
        stores.close()
    return running


def replies(slack: SlackStandIn, count: int) -> list[str]:
    return [c.params.get("text") or "" for c in slack.wait_for("response_url", count)]


def digest_of(app: RunningApp, team: str, domain: str) -> str | None:
    stores = Stores.over(Database(app.settings.db_path))
    try:
        watch = stores.watches.watch(team, domain)
        assert watch is not None
        return watch.digest
    finally:
        stores.close()


def test_slash_digest_sets_it_for_the_workspace_and_list_shows_it(
    app: RunningApp, slack: SlackStandIn
) -> None:
    status, body = app.sim.slash_command(f"digest {DOMAIN} weekly", channel_id="C9")
    assert status == 200 and body == ""
    said = replies(slack, 1)[-1]
    assert said.startswith(f"{DOMAIN} gets a weekly digest in <#C1>")  # the watch's channel
    assert digest_of(app, "T1", DOMAIN) == "weekly"
    app.sim.slash_command("list")
    listed = slack.wait_for("response_url", 2)[-1]
    assert "weekly digest" in json.dumps(listed.params["blocks"])
    app.sim.slash_command(f"digest {DOMAIN} OFF")
    assert replies(slack, 3)[-1] == f"No more digests of {DOMAIN}. Its alerts still go to <#C1>."
    assert digest_of(app, "T1", DOMAIN) is None
    slack.assert_no_violations()


def test_slash_digest_of_an_unwatched_domain_says_to_watch_it_first(
    app: RunningApp, slack: SlackStandIn
) -> None:
    # other.test is watched by T2 only: the bot's installation is T1's, whatever team is named
    app.sim.slash_command("digest other.test daily", team_id="T2")
    said = replies(slack, 1)[-1]
    assert "other.test is not watched in this workspace" in said
    assert "watch it first with `/dmarc watch other.test`" in said
    assert digest_of(app, "T2", "other.test") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"digest {DOMAIN}",
            f"Say how often: `daily`, `weekly` or `off`, as in `/dmarc digest {DOMAIN} weekly`",
        ),
        (f"digest {DOMAIN} hourly", "`hourly` is not a digest schedule: give `daily`, `weekly` or `off`"),
        (f"digest {DOMAIN} daily now", "`daily now` is not a digest schedule"),
        ("digest", "Give a domain name, as in `/dmarc digest example.com daily|weekly|off`"),
        ("digest <!channel> daily", "That is not a domain I can check"),
    ],
)
def test_slash_digest_with_bad_input_says_what_is_right(
    app: RunningApp, slack: SlackStandIn, text: str, message: str
) -> None:
    status, body = app.sim.slash_command(text)
    assert status == 200
    assert message in body and "Usage: `/dmarc digest DOMAIN daily|weekly|off`" in body
    assert "<!channel>" not in body
    assert digest_of(app, "T1", DOMAIN) is None
