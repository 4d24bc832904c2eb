"""What each `dmarcbot` command imports: a command loads only what it uses, so it starts at once.

Each case runs the real entry point in a fresh interpreter and reads back the modules it loaded
(timings are for benchmarks/startup.py: a test never asserts on a wall-clock time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dnstest import NsdServer, make_zone

ROOT = Path(__file__).resolve().parents[1]

# Runs bot.cli.main with the given arguments, then writes its exit status and sys.modules to a file:
# the command's own output stays on stdout and stderr, untouched.
DRIVER = """
import json, sys
from bot.cli import main
out, argv = sys.argv[1], sys.argv[2:]
try:
    code = main(argv)
except SystemExit as exit_:
    code = exit_.code
with open(out, "w") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

# Each is a few hundred milliseconds of imports that `check` and `why` never use: the database,
# the chart, checkdmarc (only for validating fix proposals), Slack, and the HTTP clients that
# dnspython would load for DNS over HTTPS, which dmarcbot never asks.
NEVER_FOR_CHECK_OR_WHY = (
    "checkdmarc",
    "pyleri",
    "matplotlib",
    "numpy",
    "sqlite_utils",
    "sqlite3",
    "slack_bolt",
    "slack_sdk",
    "requests",
    "httpx",
    "httpx2",
    "httpcore2",
)
# --version and --help build the parser and nothing else: no DNS, no diagnostics, no scan of the
# installed distributions.
NEVER_FOR_VERSION = (
    *NEVER_FOR_CHECK_OR_WHY,
    "importlib.metadata",
    "dns",
    "dkim",
    "cryptography",
    "asyncio",
    "handlers.domain",
)


def run_entry_point(tmp_path: Path, *argv: str) -> tuple[int, str, set[str]]:
    """Exit status, standard output, and the top-level and dotted names of every loaded module."""
    record = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(record), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert record.exists(), done.stderr  # the driver got to the end: main returned
    result = json.loads(record.read_text())
    return int(result["code"] or 0), done.stdout, set(result["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("check", "--help"), ("why", "--help")])
def test_version_and_help_load_no_command_dependencies(tmp_path: Path, argv: tuple[str, ...]) -> None:
    code, out, modules = run_entry_point(tmp_path, *argv)
    assert code == 0 and out.startswith("dmarcbot " if argv == ("--version",) else "usage: dmarcbot")
    assert "bot.cli" in modules  # the record is of the run that printed this
    assert loaded(modules, NEVER_FOR_VERSION) == []


def test_check_loads_neither_the_database_nor_the_chart_nor_checkdmarc(
    tmp_path: Path, nsd: NsdServer
) -> None:
    nsd.set_zones(
        {
            "good.test": make_zone(
                "good.test",
                [("@", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"), ("_dmarc", "TXT", "v=DMARC1; p=reject")],
            )
        }
    )
    for output in ((), ("--json",)):
        code, out, modules = run_entry_point(
            tmp_path, "check", "good.test", "--selector", "s1", "--nameserver", nsd.address, *output
        )
        assert "v=DMARC1; p=reject" in out and code == 1  # it ran the check: s1 has no key
        assert "handlers.domain.check" in modules
        assert loaded(modules, NEVER_FOR_CHECK_OR_WHY) == []


def test_why_loads_neither_the_database_nor_the_chart_nor_checkdmarc(tmp_path: Path, nsd: NsdServer) -> None:
    nsd.set_zones({"good.test": make_zone("good.test", [("_dmarc", "TXT", "v=DMARC1; p=reject")])})
    message = tmp_path / "message.eml"
    message.write_bytes(b"From: someone@good.test\r\nTo: you@example.org\r\nSubject: hi\r\n\r\nHello.\r\n")
    code, out, modules = run_entry_point(
        tmp_path, "why", str(message), "--ip", "192.0.2.1", "--nameserver", nsd.address
    )
    assert code == 1 and out.startswith("DMARC FAIL for good.test")
    assert "handlers.message.verdict" in modules
    assert loaded(modules, NEVER_FOR_CHECK_OR_WHY) == []
