"""`dmarcbot why FILE`: explain why one message passed or failed DMARC."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import textwrap
from typing import TYPE_CHECKING, BinaryIO

from bot.cli.common import AddCommand, nameservers_from
from bot.cli.terminal_text import terminal_safe
from handlers.errors import BadInput

if TYPE_CHECKING:
    from handlers.message.verdict import MessageVerdict

EXIT_PASS, EXIT_NOT_PASS, EXIT_BAD_INPUT = 0, 1, 2


def add_why_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `dmarcbot why`."""
    parser.add_argument(
        "file", metavar="FILE", help="the raw message (.eml) or its header block; - reads standard input"
    )
    parser.add_argument(
        "--ip",
        metavar="ADDR",
        help="the connecting IP to evaluate SPF for (else the receiver's "
        "Received-SPF, else the Received chain)",
    )
    parser.add_argument("--helo", metavar="NAME", help="the HELO/EHLO name the client gave")
    parser.add_argument(
        "--mail-from",
        metavar="ADDR",
        help="the envelope sender (MAIL FROM); <> for the null sender (else the Return-Path header)",
    )
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="HOST[:PORT]",
        help="DNS server to ask instead of the system resolver (repeatable; "
        "also DMARCBOT_NAMESERVERS=host[:port],...)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def command_why(args: argparse.Namespace) -> int:
    """Explain why a message passed or failed DMARC: SPF, each DKIM signature, alignment, causes.

    FILE is a raw message (.eml) or its headers alone (the body is then not checked); `-` reads
    standard input. SPF uses --ip/--helo/--mail-from when given, else the receiver's Received-SPF
    or Authentication-Results, else the first external hop of the Received chain.
    Exit status: 0 DMARC passes; 1 it fails, or the result is none, temperror or permerror;
    2 bad input (not a message, binary, over 10 MB, no From or several From addresses).
    """
    import asyncio

    from handlers.dns.resolver import DnsSession
    from handlers.message.parse import MessageError, parse_message
    from handlers.message.verdict import diagnose_message

    ip = _ip(args.ip)
    helo = _helo(args.helo)
    mail_from = _mail_from(args.mail_from)
    nameservers = nameservers_from(args.nameserver)
    data = _read(args.file)
    try:
        message = parse_message(data)
    except MessageError as error:
        raise BadInput(f"{args.file}: {error}") from None
    session = DnsSession(nameservers=nameservers)
    verdict = asyncio.run(diagnose_message(session, message, ip=ip, helo=helo, mail_from=mail_from))
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False))
    else:
        print(render_verdict(verdict))
    return EXIT_PASS if verdict.passed else EXIT_NOT_PASS


def _read(name: str) -> bytes:
    """At most the cap plus one byte, so an oversized input is refused without reading it all."""
    try:
        if name == "-":
            return _read_bounded(sys.stdin.buffer)
        with open(name, "rb") as handle:
            return _read_bounded(handle)
    except OSError as error:
        raise BadInput(f"cannot read {name}: {error.strerror or error}") from None


def _read_bounded(stream: BinaryIO) -> bytes:
    from handlers.message.parse import MAX_MESSAGE_BYTES

    return stream.read(MAX_MESSAGE_BYTES + 1)


def _ip(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise BadInput(f"--ip {text!r} is not an IPv4 or IPv6 address") from None


def _helo(text: str | None) -> str | None:
    from handlers.dns.domain_name import InvalidDomain, normalise_domain

    if text is None:
        return None
    try:
        return normalise_domain(text)
    except InvalidDomain as error:
        raise BadInput(f"--helo: {error}") from None


def _mail_from(text: str | None) -> str | None:
    from handlers.dns.domain_name import InvalidDomain, normalise_domain

    if text is None:
        return None
    value = text.strip().strip("<>")
    if not value:
        return ""  # the null sender: SPF then checks HELO (RFC 7208 §2.4)
    local, at, domain = value.rpartition("@")
    try:
        domain = normalise_domain(domain)
    except InvalidDomain as error:
        raise BadInput(f"--mail-from: {error}") from None
    return f"{local}@{domain}" if at else domain


def render_verdict(verdict: MessageVerdict) -> str:
    """The verdict as text for a terminal: result first, then each identifier, then the causes."""
    dmarc, spf = verdict.dmarc, verdict.spf
    lines = [f"DMARC {dmarc.result.upper()} for {verdict.from_domain} (From: {verdict.from_address})"]
    if dmarc.record is not None:
        lines.append(f"  record: _dmarc.{dmarc.location}: {dmarc.record.raw}")
        lines.append(f"  policy for failing mail: {dmarc.policy}; organizational domain {dmarc.org_domain}")
    lines.append(f"  {dmarc.reason}")
    lines.append("")
    aligned = {True: "domain aligned", False: "domain not aligned", None: "alignment unknown"}[spf.aligned]
    if spf.domain:
        lines.append(f"SPF {spf.result or 'not evaluated'} for {spf.identity_text()}, {aligned}")
    else:
        lines.append(
            f"SPF {spf.result or 'not evaluated'} for {spf.identity_text()}: "
            "give --mail-from ADDR or --helo NAME to evaluate one; not aligned"
        )
    lines.append(f"  IP {spf.ip or 'unknown'}: {spf.ip_detail}")
    if spf.explanation:
        lines.append(f"  {spf.explanation}")
    lines.append("")
    if not verdict.dkim:
        lines.append("DKIM: no signature")
    for result, alignment in zip(verdict.dkim, verdict.dkim_alignment, strict=True):
        state = (
            ""
            if alignment is None
            else (
                ", aligned"
                if alignment.aligned
                else ", not aligned"
                if alignment.aligned is False
                else ", alignment unknown"
            )
        )
        lines.append(f"DKIM {result.result} d={result.domain} s={result.selector}{state} [{result.reason}]")
        lines.append(f"  {result.detail}")
    if verdict.headers_only:
        lines.append("  (headers only: body hashes were not checked)")
    if verdict.causes:
        lines.append("")
        lines.append("Causes:")
        for item in verdict.causes:
            lines.append(f"- {item.id}: {item.title}")
            lines.extend(textwrap.wrap(item.detail, 96, initial_indent="    ", subsequent_indent="    "))
            lines.extend(
                textwrap.wrap("Fix: " + item.fix, 96, initial_indent="    ", subsequent_indent="    ")
            )
    if verdict.differences:
        lines.append("")
        lines.append(f"Differences from the receiver's Authentication-Results ({verdict.receiver}):")
        for diff in verdict.differences:
            lines.append(f"- {diff.what}: receiver {diff.receiver}, now {diff.ours}: {diff.why}")
    # Header values and DNS text fill these lines: each line is made safe on its own, so a value
    # can neither send an escape sequence nor start a line of its own.
    return "\n".join(terminal_safe(line, one_line=True) for line in lines)


def register_commands(add: AddCommand) -> None:
    """`why`."""
    add_why_arguments(add("why", command_why))
