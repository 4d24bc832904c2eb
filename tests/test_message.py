"""Parsing a pasted message or header block: the identifiers DMARC needs, and clear refusals."""

from __future__ import annotations

import pytest

from handlers.message.parse import (
    MAX_MESSAGE_BYTES,
    MessageError,
    parse_authentication_results,
    parse_from,
    parse_message,
    parse_received,
    parse_received_spf,
)
from tests.messages.helpers import message, prepend

RAW = prepend(
    message(
        from_="=?utf-8?q?J=C3=B6rg_M=C3=BCller?= (sales) <Joerg@Bücher.Example>",
        headers=[("Return-Path", "<bounce+123@mail.bücher.example>")],
    ),
    (
        "Authentication-Results",
        "mx.receiver.example; dkim=pass (2048-bit key; secure) "
        "header.d=bücher.example header.s=s1 header.b=AbCd; spf=pass (receiver: domain of "
        "bounce@x designates 185.70.40.10 as permitted sender; a;b) smtp.mailfrom=bounce@mail.example;"
        " dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=xn--bcher-kva.example",
    ),
    (
        "Received-SPF",
        "pass (receiver: domain of bounce@mail.example designates 185.70.40.10 as "
        'permitted sender) client-ip=185.70.40.10; envelope-from="bounce@mail.example"; '
        "helo=out.mail.example;",
    ),
    (
        "Received",
        "from out.mail.example (out.mail.example [185.70.40.10])\r\n\tby "
        "mx.receiver.example (Postfix) with ESMTPS id 4Q; Mon, 02 Mar 2026 10:00:01 +0000",
    ),
    ("ARC-Seal", "i=1; a=rsa-sha256; cv=none; d=lists.example; s=arc; t=1; b=abc"),
    ("List-Id", "<team.lists.example>"),
    (
        "DKIM-Signature",
        "v=1; a=rsa-sha256; d=Bücher.example; s=s1; h=From : To:\r\n subject; bh=abc=; b=de\r\n f=",
    ),
)


def test_from_with_encoded_words_comments_and_idn() -> None:
    parsed = parse_message(RAW)
    assert parsed.from_domain == "xn--bcher-kva.example"
    assert parsed.from_address == "Joerg@xn--bcher-kva.example"
    assert parsed.from_display_name == "Jörg Müller"


def test_envelope_chain_and_receiver_headers() -> None:
    parsed = parse_message(RAW)
    assert parsed.return_path == "bounce+123@mail.bücher.example"
    hop = parsed.received[0]
    assert (hop.helo, hop.reverse_name, hop.ip, hop.by, hop.ip_is_public) == (
        "out.mail.example",
        "out.mail.example",
        "185.70.40.10",
        "mx.receiver.example",
        True,
    )
    spf = parsed.received_spf[0]
    assert (spf.result, spf.pairs["client-ip"], spf.pairs["envelope-from"], spf.pairs["helo"]) == (
        "pass",
        "185.70.40.10",
        "bounce@mail.example",
        "out.mail.example",
    )
    ar = parsed.authentication_results[0]
    assert ar.authserv_id == "mx.receiver.example"
    assert [(m.method, m.result) for m in ar.methods] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert ar.first("spf").properties["smtp.mailfrom"] == "bounce@mail.example"  # type: ignore[union-attr]
    assert (parsed.arc_seals[0].instance, parsed.arc_seals[0].domain) == (1, "lists.example")
    assert parsed.list_headers == ("List-Id",)
    sig = parsed.dkim_signatures[0]
    assert (sig.domain, sig.selector, sig.signed_headers) == (
        "bücher.example",
        "s1",
        ("from", "to", "subject"),
    )
    assert parsed.has_body


@pytest.mark.parametrize(
    ("value", "ip", "helo"),
    [
        (
            "from mail-ed1-f54.google.com (mail-ed1-f54.google.com. [209.85.208.54]) by mx.example.net "
            "with ESMTPS id x; Tue, 1 Jan 2026 00:00:00 +0000",
            "209.85.208.54",
            "mail-ed1-f54.google.com",
        ),
        (
            "from [IPv6:2a00:1450:4864:20::52f] (helo=mail.example) by mx.example.net; Tue, 1 Jan 2026",
            "2a00:1450:4864:20::52f",
            "ipv6:2a00:1450:4864:20::52f",
        ),
        ("by mx.example.net (Postfix, from userid 0) id 1; Tue, 1 Jan 2026", None, None),
        ("from relay (10.0.0.5) by mx.example.net; Tue, 1 Jan 2026", "10.0.0.5", "relay"),
    ],
)
def test_received_variants(value: str, ip: str | None, helo: str | None) -> None:
    hop = parse_received(value)
    assert (hop.ip, hop.helo) == (ip, helo)


def test_received_spf_and_ar_with_comments_holding_separators() -> None:
    spf = parse_received_spf(
        "softfail (domain of transitioning x@y.example does not designate "
        "1.2.3.4 as permitted sender; see x=1) client-ip=1.2.3.4;"
    )
    assert (spf.result, spf.pairs) == ("softfail", {"client-ip": "1.2.3.4"})
    ar = parse_authentication_results(
        'mx.example; dkim=fail reason="signature verification failed" header.i=@a.example; arc=none'
    )
    assert ar.first("dkim").reason == "signature verification failed"  # type: ignore[union-attr]
    assert ar.first("arc").result == "none"  # type: ignore[union-attr]


def test_header_block_alone_has_no_body_and_mbox_line_is_skipped() -> None:
    headers = b"From MAILER-DAEMON Mon Mar  2 10:00:00 2026\n" + message().split(b"\r\n\r\n", 1)[0].replace(
        b"\r\n", b"\n"
    )
    parsed = parse_message(headers)
    assert (parsed.has_body, parsed.from_domain) == (False, "example.com")


def test_leading_blank_lines_and_lf_endings() -> None:
    parsed = parse_message("\n\n" + message().decode().replace("\r\n", "\n"))
    assert parsed.from_domain == "example.com" and parsed.has_body


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"Hello Bob, can you check why my mail bounced?\nThanks", "not a message"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "binary"),
        (b"From: a@example.com\x00\x00\x00\x01\x02", "binary"),
        (b"Subject: hi\r\nTo: b@example.com\r\n\r\nbody", "no From header"),
        (b"From: a@example.com\r\nFrom: b@example.com\r\n\r\n", "2 From headers"),
        (b"From: a@example.com, b@example.org\r\n\r\n", "2 addresses"),
        (b"From: undisclosed-recipients:;\r\n\r\n", "holds no address"),
        (b"From: joe@[192.0.2.1]\r\n\r\n", "address literal"),
        (b"", "empty"),
        (b"From: a@example.com\r\nthis line is not a header\r\n", "line 2"),
    ],
)
def test_bad_input_is_a_clear_message_error(data: bytes, words: str) -> None:
    with pytest.raises(MessageError, match=words):
        parse_message(data)


def test_ten_megabyte_paste_is_refused_before_parsing() -> None:
    data = b"From: a@example.com\r\n\r\n" + b"x" * MAX_MESSAGE_BYTES
    with pytest.raises(MessageError, match="over 10 MB"):
        parse_message(data)


def test_huge_header_counts_are_bounded() -> None:
    data = b"From: a@example.com\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n"
    with pytest.raises(MessageError, match="header fields"):
        parse_message(data)


def test_overlong_from_is_refused() -> None:
    with pytest.raises(MessageError, match="characters long"):
        parse_from("a" * 5000 + "@example.com")


def test_non_ascii_digits_in_tags_do_not_crash() -> None:
    """ "²".isdigit() is true but int("²") raises: tag numbers from a message are ASCII or nothing."""
    raw = (
        b"ARC-Seal: i=\xc2\xb2; a=rsa-sha256; cv=none; d=example.org; s=arc; t=1; b=abc\r\n"
        b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.arc_seals[0].instance is None
