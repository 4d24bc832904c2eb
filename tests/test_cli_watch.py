"""`dmarcbot watch / unwatch / list / monitor / export / import`: the real entry point, a real
database file, the real DNS server, and (for monitor) the Slack stand-in. The crash test runs
`python -m bot monitor --once` as a real subprocess and kills it between outbox and post."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_BAD_INPUT, EXIT_OK, LOCAL_TEAM
from bot.cli.watch import CRASH_AFTER_OUTBOX_ENV, CRASH_EXIT_CODE
from bot.limits import MAX_IMPORT_BYTES
from bot.store.database import Database
from bot.store.stores import Stores
from tests.dnstest import NsdServer
from tests.slackstub import SlackStandIn
from tests.watchtest import PROVIDER, domain_zone, provider_zone

DOMAIN = "example.test"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones({PROVIDER: provider_zone(), DOMAIN: domain_zone(DOMAIN)})
    return nsd


@pytest.fixture
def env(
    tmp_path: Path, world: NsdServer, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment a deployment would have: its database, its DNS, its Slack."""
    values = {
        "DMARCBOT_DB": str(tmp_path / "cli.db"),
        "DMARCBOT_NAMESERVERS": world.address,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_API_URL": slack.api_url,
    }
    for name in ("SLACK_TEAM_ID", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "DYNO", CRASH_AFTER_OUTBOX_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_watch_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    for command in ("watch", "unwatch", "list", "monitor", "export", "import"):
        assert f"    {command} " in out


@pytest.mark.slow
def test_watch_list_unwatch(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "watch", DOMAIN, "--channel", "C0ALERTS", "--team", "T1", "--selector", "sel")
    assert code == EXIT_OK
    assert f"Watching {DOMAIN} for team T1; alerts go to channel C0ALERTS" in out
    assert "First check: Mail from example.test can pass DMARC" in out
    code, out, _ = run(capsys, "list", "--team", "T1")
    assert code == EXIT_OK and DOMAIN in out and "C0ALERTS" in out and "pass" in out
    code, out, _ = run(capsys, "list", "--json", "--team", "T1")
    listed = json.loads(out)
    assert [(w["domain"], w["channel_id"], w["selectors"], w["last_status"]) for w in listed] == [
        (DOMAIN, "C0ALERTS", ["sel"], "pass")
    ]
    assert json.loads(run(capsys, "list", "--json", "--team", "T2")[1]) == []  # another team's
    assert len(json.loads(run(capsys, "list", "--json")[1])) == 1  # T1, the only workspace
    code, out, _ = run(capsys, "unwatch", DOMAIN, "--team", "T1")
    assert code == EXIT_OK and "Stopped watching" in out
    assert json.loads(run(capsys, "list", "--json", "--team", "T1")[1]) == []


@pytest.mark.slow
def test_default_team_is_slack_team_id_else_the_only_one_else_local(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "watch", DOMAIN, "--channel", "C1")[0] == EXIT_OK  # empty database: local
    assert run(capsys, "watch", "other.test", "--channel", "C1")[0] == EXIT_OK  # the only team
    monkeypatch.setenv("SLACK_TEAM_ID", "T0WORK")
    assert run(capsys, "watch", "provider.test", "--channel", "C1")[0] == EXIT_OK
    store = Stores.over(Database(env["DMARCBOT_DB"]))
    try:
        assert sorted(w.domain for w in store.watches.watches(LOCAL_TEAM)) == [DOMAIN, "other.test"]
        assert [w.domain for w in store.watches.watches("T0WORK")] == ["provider.test"]
    finally:
        store.close()
    monkeypatch.delenv("SLACK_TEAM_ID")
    code, _, err = run(capsys, "list")  # two workspaces now: which one is not guessed
    assert code == EXIT_BAD_INPUT and "several workspaces" in err and "--team" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("watch", "not a domain", "--channel", "C1"), "not"),
        (("watch", DOMAIN, "--channel", "#general"), "is not a Slack channel id"),
        (("watch", DOMAIN, "--channel", "C1", "--selector", "bad selector!"), "is not a DKIM selector"),
        (("watch", DOMAIN, "--channel", "C1", "--team", "T 1"), "is not a Slack team id"),
        (("watch", DOMAIN), "--channel"),
        (("unwatch", "nowhere.test"), "is not watched"),
        (("import", "/nonexistent/watches.json"), "cannot read"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_BAD_INPUT
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_export_import_round_trip(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "watch", DOMAIN, "--channel", "C1", "--team", "T1", "--selector", "sel")
    run(capsys, "watch", DOMAIN, "--channel", "C2", "--team", "T2")
    code, exported, _ = run(capsys, "export")
    assert code == EXIT_OK
    data = json.loads(exported)
    assert [(w["team_id"], w["channel_id"], w["selectors"]) for w in data["watches"]] == [
        ("T1", "C1", ["sel"]),
        ("T2", "C2", []),
    ]
    dump = tmp_path / "watches.json"
    dump.write_text(exported)
    monkeypatch.setenv("DMARCBOT_DB", str(tmp_path / "restored.db"))
    code, out, _ = run(capsys, "import", str(dump))
    assert code == EXIT_OK and "Imported 2 watches" in out and "2 new" in out
    again = json.loads(run(capsys, "export")[1])
    strip = [{k: v for k, v in w.items() if k != "created_at"} for w in data["watches"]]
    assert [{k: v for k, v in w.items() if k != "created_at"} for w in again["watches"]] == strip
    assert run(capsys, "import", str(dump))[1].count("0 new") == 1  # importing twice adds nothing


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"watches": []}', "is not a dmarcbot watch export"),
        ('{"format": "dmarcbot-watches", "version": 9, "watches": []}', "export version 9"),
        (
            '{"format": "dmarcbot-watches", "version": 1, "watches": [{"team_id": "T1", '
            '"channel_id": "C1", "domain": "ok.test"}, {"team_id": "T1", "channel_id": "C1", '
            '"domain": "bad domain"}]}',
            "watch #2",
        ),
        ('{"format": "dmarcbot-watches", "version": true, "watches": []}', "export version true"),
        (
            '{"format": "dmarcbot-watches", "version": 1, "watches": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nests arrays and objects 100001 deep, over the limit of 8 (an export nests 4)",
        ),
        ("[" * 9 + "]" * 9, "nests arrays and objects 9 deep"),
    ],
    ids=["not-json", "not-export", "version-9", "bad-watch", "version-true", "deep", "just-over"],
)
def test_a_bad_import_file_imports_nothing(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, _, err = run(capsys, "import", str(path))
    assert code == EXIT_BAD_INPUT and message in err
    assert "Traceback" not in err
    assert json.loads(run(capsys, "list", "--json", "--team", "T1")[1]) == []


def test_an_import_over_the_size_cap_is_refused_unread(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as file:
        file.truncate(MAX_IMPORT_BYTES + 1)  # sparse: costs no disk
    code, _, err = run(capsys, "import", str(path))
    assert code == EXIT_BAD_INPUT and "is over 64 MB, larger than any export" in err


@pytest.mark.slow
def test_an_import_killed_midway_leaves_none_or_all_of_its_watches(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 100_000
    watches = [
        {"team_id": "T1", "channel_id": "C1", "domain": f"d{i}.example.test", "selectors": []}
        for i in range(count)
    ]
    dump = tmp_path / "many.json"
    dump.write_text(json.dumps({"format": "dmarcbot-watches", "version": 1, "watches": watches}))
    run(capsys, "list", "--team", "T1")  # the database file exists, migrated, in WAL mode
    wal = Path(env["DMARCBOT_DB"] + "-wal")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "import", str(dump)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The signal that the import is writing: its pages reach the write-ahead log.
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if wal.exists() and wal.stat().st_size > 2 * 1024 * 1024:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the import finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    store = Stores.over(Database(env["DMARCBOT_DB"]))
    try:
        stored = len(store.watches.watches("T1"))
    finally:
        store.close()
    assert stored in (0, count), f"{stored} of {count} watches were left behind"


@pytest.mark.slow
def test_monitor_once_posts_the_change(
    env: dict[str, str], world: NsdServer, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "watch", DOMAIN, "--channel", "C1", "--team", "T1", "--selector", "sel")
    code, out, _ = run(capsys, "monitor", "--once")
    assert code == EXIT_OK and "0 alerts written" in out and slack.posts() == []
    world.set_zone(DOMAIN, domain_zone(DOMAIN, dmarc="v=DMARC1; p=none; rua=mailto:d@example.test"))
    code, out, _ = run(capsys, "monitor", "--once")
    assert code == EXIT_OK and "1 alerts written, 1 posted in 1 messages, 0 pending" in out
    assert slack.posts()[0].text.startswith(f"{DOMAIN}: DNS records changed")


def test_monitor_without_a_token_keeps_alerts_pending(
    env: dict[str, str],
    world: NsdServer,
    slack: SlackStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(capsys, "watch", DOMAIN, "--channel", "C1", "--team", "T1", "--selector", "sel")
    world.set_zone(DOMAIN, domain_zone(DOMAIN, dmarc="v=DMARC1; p=none; rua=mailto:d@example.test"))
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, out, err = run(capsys, "monitor", "--once")
    assert code == EXIT_OK and "1 pending" in out and "SLACK_BOT_TOKEN" in err
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    code, out, _ = run(capsys, "monitor", "--once")
    assert "1 posted" in out and len(slack.posts()) == 1


def monitor_process(env: dict[str, str], crash: bool) -> subprocess.CompletedProcess[str]:
    """`python -m bot monitor --once` as its own process, as cron would run it."""
    child_env = {**os.environ, **env}
    child_env.pop(CRASH_AFTER_OUTBOX_ENV, None)
    if crash:
        child_env[CRASH_AFTER_OUTBOX_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "bot", "monitor", "--once"],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def monitor_processes_at_once(env: dict[str, str], count: int) -> list[subprocess.CompletedProcess[str]]:
    """`count` `python -m bot monitor --once` processes started together (overlapping cron runs)."""
    child_env = {**os.environ, **env}
    child_env.pop(CRASH_AFTER_OUTBOX_ENV, None)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "monitor", "--once"],
            cwd=ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for process in started:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def pending_alerts_on_channels(
    env: dict[str, str], world: NsdServer, capsys: pytest.CaptureFixture[str], domains: list[str]
) -> None:
    """Each domain watched on its own channel, each with one alert in the outbox, not yet posted."""
    for i, domain in enumerate(domains):
        world.set_zone(domain, domain_zone(domain))
        run(capsys, "watch", domain, "--channel", f"C{i}", "--team", "T1", "--selector", "sel")
    for domain in domains:
        world.set_zone(domain, domain_zone(domain, dmarc=f"v=DMARC1; p=none; rua=mailto:d@{domain}"))
    token = os.environ.pop("SLACK_BOT_TOKEN")
    try:
        code, out, _ = run(capsys, "monitor", "--once")
    finally:
        os.environ["SLACK_BOT_TOKEN"] = token
    assert code == EXIT_OK and f"{len(domains)} alerts written, 0 posted" in out


@pytest.mark.slow
def test_two_monitors_at_once_post_each_alert_exactly_once(
    env: dict[str, str], world: NsdServer, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    domains = [f"d{i}.test" for i in range(4)]
    pending_alerts_on_channels(env, world, capsys, domains)
    slack.delay("chat.postMessage", 1.0)  # a slow Slack: both passes overlap for seconds
    first, second = monitor_processes_at_once(env, 2)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    posts = slack.posts()
    assert sorted(p.params["channel"] for p in posts) == ["C0", "C1", "C2", "C3"]
    for post, domain in ((p, p.text.split(":")[0]) for p in posts):
        assert domain in domains and post.params["channel"] == f"C{domains.index(domain)}"
    posted = [int(re.search(r"(\d+) posted in", r.stdout).group(1)) for r in (first, second)]  # type: ignore[union-attr]
    assert sum(posted) == 4, first.stdout + second.stdout  # each alert posted by exactly one of them
    store = Stores.over(Database(env["DMARCBOT_DB"]))
    try:
        assert [a.state for a in store.outbox.alerts("T1")] == ["posted"] * 4
    finally:
        store.close()


@pytest.mark.slow
def test_a_lease_held_by_a_live_monitor_is_skipped_and_a_dead_ones_expires(
    env: dict[str, str], world: NsdServer, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    pending_alerts_on_channels(env, world, capsys, ["d0.test", "d1.test"])
    store = Stores.over(Database(env["DMARCBOT_DB"]))
    try:
        # by channel, not by id: the alerts are written in the order the checks finish
        by_channel = {a.channel_id: a.id for a in store.outbox.alerts("T1")}
        live, dead = by_channel["C0"], by_channel["C1"]
        with store.database.write() as db:  # two monitors claimed one each; the second then died
            db.execute(
                "UPDATE alerts SET claimed_by = 'other-live', claimed_until = ? WHERE id = ?",
                ["2999-01-01T00:00:00+00:00", live],
            )
            db.execute(
                "UPDATE alerts SET claimed_by = 'other-dead', claimed_until = ? WHERE id = ?",
                ["2000-01-01T00:00:00+00:00", dead],
            )
        [result] = monitor_processes_at_once(env, 1)
        assert result.returncode == 0, result.stderr
        assert "1 posted in 1 messages, 1 pending (1 being posted by another monitor)." in result.stdout
        assert [p.params["channel"] for p in slack.posts()] == ["C1"]
        assert {a.id: a.state for a in store.outbox.alerts("T1")} == {live: "pending", dead: "posted"}
    finally:
        store.close()


@pytest.mark.slow
def test_killed_between_outbox_and_post_then_restarted_posts_exactly_once(
    env: dict[str, str], world: NsdServer, slack: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "watch", DOMAIN, "--channel", "C1", "--team", "T1", "--selector", "sel")
    world.set_zone(PROVIDER, provider_zone("v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"))
    crashed = monitor_process(env, crash=True)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert slack.posts() == []
    store = Stores.over(Database(env["DMARCBOT_DB"]))
    try:
        assert [a.state for a in store.outbox.alerts("T1")] == ["pending"]  # written, not posted
    finally:
        store.close()
    restarted = monitor_process(env, crash=False)
    assert restarted.returncode == 0, restarted.stderr
    assert "0 alerts written, 1 posted" in restarted.stdout  # the change is not decided twice
    again = monitor_process(env, crash=False)
    assert again.returncode == 0 and "0 posted" in again.stdout
    posts = slack.posts()
    assert len(posts) == 1 and posts[0].text.startswith(f"{DOMAIN}: DNS records changed")


def test_an_idn_is_named_in_unicode_with_its_a_label_once(
    env: dict[str, str], world: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    world.set_zone("xn--bcher-kva.test", domain_zone("xn--bcher-kva.test"))
    code, out, _ = run(capsys, "watch", "bücher.test", "--channel", "C1")
    assert code == EXIT_OK
    assert out.startswith("Watching bücher.test (xn--bcher-kva.test) for team")
    assert out.count("xn--bcher-kva.test") == 1 and "First check: Mail from bücher.test" in out
    code, out, _ = run(capsys, "unwatch", "bücher.test")
    assert out == "Stopped watching bücher.test (xn--bcher-kva.test) for team local.\n"
