"""`dmarcbot why`: files and stdin, text and JSON, exit status, and bad input answered clearly.

The parser here is built exactly as bot/cli/__init__.py builds a subcommand (help from the docstring), and
errors go through the same BadInput → exit 2 path as `main()`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.why import add_why_arguments, command_why
from handlers.errors import BadInput
from tests.dnstest import FaultProxy, NsdServer
from tests.messages.helpers import key_record, message, prepend, rsa_key, sign, zones

PEM, PUB = rsa_key(2048)
RECORDS = {
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
    "example.com": [("TXT", "v=spf1 ip4:185.70.40.10 -all")],
    "s1._domainkey.example.com": [("TXT", key_record(PUB))],
    # an attacker's domain: escape sequences in its DMARC record
    "_dmarc.evil.example": [
        ("TXT", "v=DMARC1; p=none; rua=mailto:d@evil.example\x1b[2J\x1b]0;DMARC PASS\x07")
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    nsd = NsdServer(tmp_path_factory.mktemp("nsd-cli-why"))
    nsd.start(zones(RECORDS))
    try:
        yield nsd
    finally:
        nsd.stop()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dmarcbot")
    commands = parser.add_subparsers(dest="command")
    doc = (command_why.__doc__ or "").strip()
    sub = commands.add_parser("why", help=doc.splitlines()[0], description=doc)
    add_why_arguments(sub)
    args = parser.parse_args(argv)
    try:
        code = command_why(args)
    except BadInput as error:  # what bot.cli.main() does
        print(f"dmarcbot why: {error}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "message.eml"
    path.write_bytes(data)
    return str(path)


SIGNED = prepend(
    sign(message(headers=[("Return-Path", "<alice@example.com>")]), "example.com", "s1", PEM),
    (
        "Received",
        "from out.example.com (out.example.com [185.70.40.10]) by "
        "mx.receiver.example; Mon, 02 Mar 2026 10:00:01 +0000",
    ),
)


def test_pass_exits_0_with_text(
    server: NsdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["why", write(tmp_path, SIGNED), "--nameserver", server.address], capsys)
    assert code == 0
    assert out.startswith("DMARC PASS for example.com")
    assert "DKIM pass d=example.com s=s1" in out
    assert "IP 185.70.40.10" in out


def test_fail_exits_1_and_json_carries_the_causes(
    server: NsdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = SIGNED + b"-- \r\nfooter\r\n"
    code, out, _ = run(
        ["why", write(tmp_path, broken), "--nameserver", server.address, "--ip", "91.198.174.2", "--json"],
        capsys,
    )
    assert code == 1
    data = json.loads(out)
    assert data["dmarc"]["result"] == "fail"
    assert data["spf"]["ip_source"] == "flag"
    assert [c["id"] for c in data["causes"]] == ["cause.spf_ip_not_authorized", "cause.dkim_body_modified"]
    assert data["dkim"][0]["reason"] == "body_hash_mismatch"


def test_stdin_dash(
    server: NsdServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = SIGNED.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(headers)))
    code, out, _ = run(["why", "-", "--nameserver", server.address], capsys)
    assert code == 0
    assert "headers only" in out


def test_dns_temperror_exits_1(
    nsd: NsdServer, fault_proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nsd.set_zones(zones(RECORDS))
    fault_proxy.add_fault("_dmarc.example.com", "servfail")
    code, out, _ = run(
        ["why", write(tmp_path, SIGNED), "--nameserver", fault_proxy.address, "--json"], capsys
    )
    assert code == 1
    data = json.loads(out)
    assert data["dmarc"]["result"] == "temperror"
    assert "cause.dns_temperror" in [c["id"] for c in data["causes"]]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"hi, why did my mail bounce?", "not a message"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"From: a@example.com\r\n\r\n" + b"x" * (10 * 1024 * 1024), "over 10 MB"),
        (b"Subject: no author\r\nTo: b@example.com\r\n", "no From header"),
        (b"From: a@example.com, b@example.net\r\n\r\n", "2 addresses"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, data: bytes, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["why", write(tmp_path, data), "--nameserver", "127.0.0.1:9"], capsys)
    assert code == 2 and out == ""
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--ip", "999.1.1.1"], "not an IPv4 or IPv6 address"),
        (["--helo", "not a name"], "--helo"),
        (["--mail-from", "a@b@"], "--mail-from"),
        (["--nameserver", "dns server"], "not an IP address or host name"),
    ],
)
def test_bad_flags_exit_2(
    tmp_path: Path, flags: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["why", write(tmp_path, SIGNED), *flags], capsys)
    assert code == 2 and words in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["why", str(tmp_path / "nope.eml")], capsys)
    assert code == 2 and "cannot read" in err


def test_help_comes_from_the_docstring() -> None:
    doc = command_why.__doc__ or ""
    assert doc.splitlines()[0].startswith("Explain why a message passed or failed DMARC")
    assert "Exit status: 0" in doc


def spf_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("SPF "))


def test_without_a_mail_from_it_says_which_identity_was_checked_and_why(
    server: NsdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no Return-Path, no Received header: nothing names a MAIL FROM or a HELO
    raw = sign(message(), "example.com", "s1", PEM)
    path = write(tmp_path, raw)
    _, out, _ = run(["why", path, "--ip", "192.0.2.1", "--nameserver", server.address], capsys)
    line = spf_line(out)
    assert "?" not in line
    assert "MAIL FROM is empty" in line and "HELO" in line and "RFC 7208 §2.4" in line
    assert "--helo" in line  # the terminal names its own way to give one
    _, out, _ = run(
        ["why", path, "--ip", "192.0.2.1", "--helo", "out.example.com", "--nameserver", server.address],
        capsys,
    )
    line = spf_line(out)
    assert "out.example.com (the HELO name" in line and "never" in line and "alignment" in line


def test_message_and_dns_text_cannot_drive_the_terminal(
    server: NsdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = message(from_='"Alice\x1b[8m" <alice@evil.example>', subject="hi")
    code, out, err = run(
        ["why", write(tmp_path, raw), "--nameserver", server.address, "--ip", "192.0.2.1"], capsys
    )
    assert code == 1, err
    assert "\x1b" not in out and "\x07" not in out
    assert "rua=mailto:d@evil.example\\x1b[2J\\x1b]0;DMARC PASS\\x07" in out


def test_a_refusal_quoting_the_message_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main  # the entry point prints refusals

    raw = message(from_="Alice\x1b[2J <nobody>", subject="hi")
    assert main(["why", write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "Alice\\x1b[2J" in err
