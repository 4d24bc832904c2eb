"""`dmarcbot check` as a user runs it: output, JSON, exit status, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_BAD_INPUT, EXIT_DNS_UNREACHABLE, EXIT_ERROR_FINDING, EXIT_OK
from bot.cli.terminal_report import render_domain_report
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.domain.check import check_domain
from tests.dnstest import NsdServer, free_port, make_zone

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(
        {
            "good.test": make_zone(
                "good.test",
                [
                    ("@", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
                    ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:d@good.test"),
                    ("@", "MX", "10 mx.good.test."),
                    ("mx", "A", "192.0.2.25"),
                ],
            ),
            "bad.test": make_zone("bad.test", [("@", "TXT", "v=spf1 +all")]),
            "xn--bcher-kva.test": make_zone(
                "xn--bcher-kva.test", [("@", "TXT", "v=spf1 -all"), ("_dmarc", "TXT", "v=DMARC1; p=none")]
            ),
            "test": make_zone("test", []),
        }
    )
    return nsd


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_prints_a_grouped_report_and_exits_0(
    served: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "check", "good.test", "--nameserver", served.address)
    assert code == EXIT_OK
    assert out.startswith("[PASS] Mail from good.test can pass DMARC today")
    for heading in ("DMARC", "SPF", "DKIM", "MX"):
        assert f"\n{heading}\n" in out
    assert "record:   v=DMARC1; p=reject; rua=mailto:d@good.test" in out
    assert "\033[" not in out  # no colour when not a terminal


def test_an_error_finding_exits_1(served: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "bad.test", "--nameserver", served.address)
    assert code == EXIT_ERROR_FINDING
    assert "ERROR spf.pass_all" in out and "ERROR dmarc.missing" in out


def test_json_output_is_one_object(served: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "check", "https://Good.TEST./path", "--json", "--nameserver", served.address
    )
    data = json.loads(out)
    assert code == EXIT_OK
    assert data["domain"] == "good.test"
    assert data["dmarc"]["policy"] == "reject"
    assert data["spf"]["record"] == "v=spf1 ip4:192.0.2.0/24 -all"
    assert data["mx"] == [
        {
            "preference": 10,
            "host": "mx.good.test",
            "addresses": ["192.0.2.25"],
            "reverse": {"192.0.2.25": None},
            "tlsa": [],
        }
    ]


def test_idn_names_are_checked_in_punycode(served: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "bücher.test", "--json", "--nameserver", served.address)
    data = json.loads(out)
    assert data["domain"] == "xn--bcher-kva.test" and data["display_domain"] == "bücher.test"
    assert code == EXIT_OK


@pytest.mark.slow
def test_named_selectors_replace_probing(served: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "check",
        "good.test",
        "--selector",
        "s1",
        "--selector",
        "s2",
        "--json",
        "--nameserver",
        served.address,
    )
    data = json.loads(out)
    assert data["dkim_selectors_tried"] == ["s1", "s2"]
    assert {f["id"] for f in data["findings"]} >= {"dkim.key_missing"}
    assert code == EXIT_ERROR_FINDING


@pytest.mark.parametrize(
    "bad, words",
    [
        ("", "no domain name"),
        ("exa mple.com", "contains spaces"),
        ("192.0.2.1", "IP address"),
        ("a" * 300 + ".com", "at most 253"),
        ("a" * 64 + ".com", "at most 63"),
    ],
)
def test_bad_domains_exit_2_before_any_lookup(
    capsys: pytest.CaptureFixture[str], bad: str, words: str
) -> None:
    # the nameserver is a closed port: a lookup would time out, so a fast exit 2 shows none ran
    code, out, err = run_cli(capsys, "check", bad, "--nameserver", f"127.0.0.1:{free_port()}")
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("dmarcbot check: ") and words in err


def test_bad_selector_and_nameserver_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "good.test", "--selector", "bad selector!")
    assert code == EXIT_BAD_INPUT and "is not a DKIM selector" in err
    code, _, err = run_cli(capsys, "check", "good.test", "--nameserver", "dns server")
    assert code == EXIT_BAD_INPUT and "is not an IP address or host name" in err


def test_unreachable_dns_exits_3(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMARCBOT_DNS_TIMEOUT", "0.1")
    code, out, _ = run_cli(capsys, "check", "good.test", "--nameserver", f"127.0.0.1:{free_port()}")
    assert code == EXIT_DNS_UNREACHABLE
    assert "Could not reach DNS" in out


def test_nameservers_from_the_environment(
    served: NsdServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMARCBOT_NAMESERVERS", served.address)
    code, out, _ = run_cli(capsys, "check", "good.test", "--json")
    assert code == EXIT_OK and json.loads(out)["dmarc"]["policy"] == "reject"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_BAD_INPUT
    assert main(["check"]) == EXIT_BAD_INPUT  # argparse: DOMAIN is required
    assert main(["no-such-command"]) == EXIT_BAD_INPUT


@pytest.mark.slow
def test_console_script_and_module_entry_points_agree() -> None:
    script = Path(sys.executable).with_name("dmarcbot")
    by_script = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    by_module = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout and by_script.stdout.startswith("dmarcbot ")


def test_an_idn_report_is_in_unicode_with_its_a_label_once(
    served: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_cli(capsys, "check", "bücher.test", "--nameserver", served.address)
    assert out.count("xn--bcher-kva.test") == 1
    assert out.splitlines()[1] == "Domain: bücher.test (xn--bcher-kva.test)"
    assert "_dmarc.bücher.test" in out and "mail from bücher.test" in out


# A DMARC record an attacker publishes: clear the screen, retitle the window, fake a verdict line.
HOSTILE_DMARC = (
    "v=DMARC1; p=none; rua=mailto:d@evil.test\x1b[2J\x1b]0;all good\x07\r\n[PASS] fake\x9b31m\u202e"
)


def _hostile_zone(nsd: NsdServer) -> None:
    nsd.set_zone(
        "evil.test",
        make_zone("evil.test", [("@", "TXT", "v=spf1 -all\x1b[32m"), ("_dmarc", "TXT", HOSTILE_DMARC)]),
    )


def test_dns_text_cannot_drive_the_terminal(served: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    _hostile_zone(served)
    _, out, _ = run_cli(capsys, "check", "evil.test", "--nameserver", served.address)
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert raw not in out
    assert "rua=mailto:d@evil.test\\x1b[2J\\x1b]0;all good\\x07\\x0d\\x0a[PASS] fake\\x9b31m\\u202e" in out
    assert "\n[PASS] fake" not in out
    assert out.startswith("[")


def test_coloured_output_keeps_only_its_own_colours(served: NsdServer) -> None:
    _hostile_zone(served)
    session = DnsSession(nameservers=(parse_nameserver(served.address),), timeout=0.5, attempts=1)
    text = render_domain_report(asyncio.run(check_domain("evil.test", session)), colour=True)
    assert re.findall("\x1b[^\\[]|\x1b\\[(?![0-9;]*m)", text) == []  # only SGR colour codes of ours
    assert set(re.findall("\x1b\\[([0-9;]*)m", text)) <= {"0", "1", "31", "32", "33", "36"}
    assert "v=spf1 -all\\x1b[32m" in text and "\x07" not in text and "\x9b" not in text


def test_a_reader_that_goes_away_ends_the_command_quietly(served: NsdServer, tmp_path: Path) -> None:
    # `dmarcbot check x | head`: the reader is gone before the report is written. Like a Unix tool,
    # the command stops without a word (no BrokenPipeError traceback), with 128 + SIGPIPE.
    for argv in (["check", "good.test", "--nameserver", served.address], ["check", "good.test", "--json"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "DMARCBOT_NAMESERVERS": served.address},
        )
        assert process.stdout is not None
        process.stdout.close()  # as `head` does once it has its lines
        _, err = process.communicate(timeout=60)
        assert process.returncode == 141, err  # the pipe-closed path ran: not a crash (1), not 0
        assert err == b""


DATABASE_COMMANDS = [
    ["watch", "example.com", "--channel", "C0ALERTS"],
    ["unwatch", "example.com"],
    ["list"],
    ["monitor", "--once"],
    ["export"],
    ["import", "EXPORT"],
    ["ingest", "REPORT"],
    ["report", "example.com"],
]


def unusable_folders(tmp_path: Path) -> list[tuple[Path, str]]:
    """A folder that does not exist, and one this user cannot create files in. Root may write in
    any folder whatever its mode, but not in /sys (sysfs refuses every new file)."""
    read_only = Path("/sys") if os.geteuid() == 0 else tmp_path / "read-only"
    if read_only != Path("/sys"):
        read_only.mkdir()
        read_only.chmod(0o555)
    return [
        (tmp_path / "no-such-folder", "does not exist: create it (mkdir -p"),
        (read_only, "writable by this user"),
    ]


@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=lambda argv: argv[0])
def test_a_database_in_an_unusable_folder_is_named_with_what_to_do(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "watches.json"
    export.write_text(json.dumps({"format": "dmarcbot-watches", "version": 1, "watches": []}))
    report = tmp_path / "report.xml"
    report.write_text("<feedback/>")
    argv = [{"EXPORT": str(export), "REPORT": str(report)}.get(word, word) for word in argv]
    monkeypatch.delenv("SLACK_TEAM_ID", raising=False)
    for folder, what_to_do in unusable_folders(tmp_path):
        path = folder / "dmarcbot.db"
        monkeypatch.setenv("DMARCBOT_DB", str(path))
        assert main(argv) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith(f"dmarcbot {argv[0]}: DMARCBOT_DB is {path}, ") and what_to_do in err
        assert "Traceback" not in err and not path.exists()


@pytest.mark.slow
def test_serve_names_a_database_in_an_unusable_folder_before_it_starts(tmp_path: Path) -> None:
    for folder, what_to_do in unusable_folders(tmp_path):
        path = folder / "dmarcbot.db"
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret",
            "PORT": str(free_port()),
            "DMARCBOT_DB": str(path),
        }
        env.pop("SLACK_APP_TOKEN", None)
        done = subprocess.run(
            [sys.executable, "-m", "bot", "serve"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
        )
        assert done.returncode == EXIT_BAD_INPUT, done.stderr
        assert (
            done.stderr.startswith(f"dmarcbot serve: DMARCBOT_DB is {path}, ") and what_to_do in done.stderr
        )
        assert "Traceback" not in done.stderr
