"""handlers/dns/domain_name.py: what a user typed becomes a domain name, or a specific error."""

from __future__ import annotations

import pytest

from handlers.dns.domain_name import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    InvalidDomain,
    display_name,
    first_mention,
    normalise_domain,
    unicode_names,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("  example.com  ", "example.com"),
        ("EXAMPLE.com.", "example.com"),
        ("https://example.com/path", "example.com"),
        ("http://Example.COM/path?q=1#frag", "example.com"),
        ("https://user:pw@example.com:8443/x", "example.com"),
        ("example.com/path/to", "example.com"),
        ("user@example.com", "example.com"),
        ("User.Name+tag@Mail.Example.COM", "mail.example.com"),
        ("mailto:user@example.com", "example.com"),
        ("<http://example.com|example.com>", "example.com"),
        ("<https://example.com/path|example.com/path>", "example.com"),
        ("<mailto:u@example.com|u@example.com>", "example.com"),
        ("<http://example.com>", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),  # uts46 maps case first
        ("https://bücher.example/", "xn--bcher-kva.example"),
        ("info@bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: ß is not folded to ss
        ("fass.de", "fass.de"),
        ("sub.domain.example.co.uk", "sub.domain.example.co.uk"),
        ("a-b.example", "a-b.example"),
        ("1.2.3.4.example", "1.2.3.4.example"),  # digits as labels, but not an IP address
        ("a" * 63 + ".example", "a" * 63 + ".example"),  # exactly the label limit
        (".".join(["a"] * 126) + ".c", ".".join(["a"] * 126) + ".c"),  # exactly 253 characters
    ],
)
def test_normalises(text: str, expected: str) -> None:
    assert normalise_domain(text) == expected


def test_fass_and_faß_stay_distinct() -> None:
    """Without IDNA 2008, faß.de silently becomes fass.de."""
    assert normalise_domain("faß.de") != normalise_domain("fass.de")
    assert display_name(normalise_domain("faß.de")) == "faß.de"


@pytest.mark.parametrize(
    ("ascii_name", "shown"),
    [
        ("xn--bcher-kva.example", "bücher.example"),
        ("example.com", "example.com"),
        ("xn--zz.example", "xn--zz.example"),
    ],
)
def test_display_name(ascii_name: str, shown: str) -> None:
    assert display_name(ascii_name) == shown


@pytest.mark.parametrize(
    ("text", "message_parts"),
    [
        pytest.param("", ["no domain name was given"], id="empty"),
        pytest.param("   ", ["no domain name was given"], id="blank"),
        pytest.param("<http://|>", ["no domain name was given"], id="empty-slack-link"),
        pytest.param("https:///path", ["no domain name was given"], id="url-without-host"),
        pytest.param("exa mple.com", ["contains spaces"], id="space-inside"),
        pytest.param("example.com other.com", ["contains spaces"], id="two-names"),
        pytest.param("example.com\tother.com", ["contains spaces"], id="tab"),
        pytest.param("192.0.2.1", ["is an IP address"], id="ipv4"),
        pytest.param("192.0.2.1.", ["is an IP address"], id="ipv4-trailing-dot"),
        pytest.param("2001:db8::1", ["is an IP address"], id="ipv6"),
        pytest.param("[2001:db8::1]", ["is an IP address"], id="ipv6-bracketed"),
        pytest.param("[192.0.2.1]", ["is an IP address"], id="ipv4-bracketed"),
        pytest.param("http://[2001:db8::1]/x", ["is an IP address"], id="ipv6-url"),
        pytest.param("https://192.0.2.1/x", ["is an IP address"], id="ipv4-url"),
        pytest.param("postmaster@[192.0.2.1]", ["is an IP address"], id="address-literal"),
        pytest.param("a" * 300, ["300 characters long", f"at most {MAX_NAME_LENGTH}"], id="300-chars-no-dot"),
        pytest.param(
            ".".join(["abcdefghi"] * 30),
            ["299 characters long", f"at most {MAX_NAME_LENGTH}"],
            id="300-chars-dotted",
        ),
        pytest.param(".".join(["a"] * 127) + ".c", ["255 characters long"], id="254-plus"),
        pytest.param("x" * 1001, ["1001 characters long"], id="over-input-bound"),
        pytest.param(
            "a" * 64 + ".example", ["64 characters long", f"at most {MAX_LABEL_LENGTH}"], id="64-char-label"
        ),
        pytest.param("www." + "b" * 70 + ".example", ["70 characters long"], id="70-char-inner-label"),
        pytest.param("a" * 64, ["64 characters long"], id="64-char-single-label"),
        pytest.param("localhost", ["has no dot"], id="no-dot"),
        pytest.param("under_score.example", ["“under_score” contains an underscore"], id="underscore"),
        pytest.param(
            "_dmarc.example.com", ["“_dmarc” contains an underscore", "example.com"], id="pasted-record-name"
        ),
        pytest.param(
            "sel._domainkey.example.com", ["“_domainkey” contains an underscore"], id="pasted-dkim-name"
        ),
        pytest.param("ex!ample.com", ["“ex!ample” is not a valid part"], id="bang"),
        pytest.param("*.example.com", ["“*” is not a valid part"], id="wildcard"),
        pytest.param(
            "-lead.example", ["“-lead” is not a valid part", "not at either end"], id="leading-hyphen"
        ),
        pytest.param("trail-.example", ["“trail-” is not a valid part"], id="trailing-hyphen"),
        pytest.param("example..com", ["“(empty)” is not a valid part"], id="empty-label"),
        pytest.param(".example.com", ["“(empty)” is not a valid part"], id="leading-dot"),
        pytest.param("xn--zz.example", ["“xn--zz” is not valid punycode"], id="bad-punycode"),
        pytest.param("☃\u200d.example", ["not a valid internationalised domain name"], id="bad-idn"),
    ],
)
def test_rejects_with_a_specific_message(text: str, message_parts: list[str]) -> None:
    with pytest.raises(InvalidDomain) as raised:
        normalise_domain(text)
    message = str(raised.value)
    for part in message_parts:
        assert part in message, message


@pytest.mark.parametrize("text", ["a" * 300, "a" * 64, "b" * 254])
def test_long_word_is_not_called_a_missing_dot(text: str) -> None:
    """A 300-character word is too long; suggesting "aaaa….com" would be misleading."""
    with pytest.raises(InvalidDomain) as raised:
        normalise_domain(text)
    assert "no dot" not in str(raised.value)
    assert "characters long" in str(raised.value)


def test_error_messages_are_bounded() -> None:
    """The message quotes the input, but never the whole of a huge one."""
    with pytest.raises(InvalidDomain) as raised:
        normalise_domain("bad!" * 200 + ".example")
    assert len(str(raised.value)) < 300


def test_prose_names_are_shown_in_unicode_and_first_mentions_carry_the_a_label() -> None:
    assert unicode_names("xn--bcher-kva.test has no MX (mx.xn--bcher-kva.test.); example.com too") == (
        "bücher.test has no MX (mx.bücher.test.); example.com too"
    )
    assert first_mention("xn--bcher-kva.test") == "bücher.test (xn--bcher-kva.test)"
    assert first_mention("example.com") == "example.com"
