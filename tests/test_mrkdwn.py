"""mrkdwn safety for untrusted text: escaping (& first), code spans that cannot be closed from
inside, clipping that never leaves half an entity."""

from __future__ import annotations

import re

import pytest

from bot.slack.mrkdwn import clip, code, code_block, escape, safe

ENTITY_TAIL = re.compile(r"&[a-z]*$")


def test_escape_does_ampersand_first() -> None:
    assert escape("<&>") == "&lt;&amp;&gt;"
    # text that already looks escaped is shown as typed, not unescaped by Slack
    assert escape("&lt;!channel&gt;") == "&amp;lt;!channel&amp;gt;"
    assert escape("a && b") == "a &amp;&amp; b"


@pytest.mark.parametrize(
    "text",
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U123>",
        "<#C123>",
        "<https://evil.example|Click>",
        "<!subteam^S1>",
        "<!date^1^{date}|x>",
    ],
)
def test_escape_defuses_every_control_sequence(text: str) -> None:
    out = escape(text)
    assert "<" not in out and ">" not in out
    assert out.startswith("&lt;") and out.endswith("&gt;")


def test_safe_leaves_short_text_whole() -> None:
    assert safe("v=spf1 -all <x>", 100) == "v=spf1 -all &lt;x&gt;"


@pytest.mark.parametrize("limit", range(10, 40))
def test_safe_clips_without_cutting_an_entity(limit: int) -> None:
    text = "ab<" * 30 + "&" * 30
    out = safe(text, limit)
    assert len(out) <= limit
    assert out.endswith("…")
    body = out[:-1]
    assert not ENTITY_TAIL.search(body), out
    # every & that is left starts a whole entity
    assert all(m.group(0) in ("&lt;", "&gt;", "&amp;") for m in re.finditer(r"&[a-z]*;?", body))


def test_safe_limit_counts_the_escaped_text() -> None:
    out = safe("<" * 100, 40)
    assert len(out) <= 40 and out.count("&lt;") == 9


def test_code_span_cannot_be_closed_from_inside() -> None:
    out = code("x` <!channel> `y")
    assert out.startswith("`") and out.endswith("`")
    assert out.count("`") == 2
    assert "&lt;!channel&gt;" in out


def test_code_block_cannot_be_closed_from_inside() -> None:
    out = code_block("```\n<!here>\n```")
    assert out.startswith("```") and out.endswith("```")
    assert out.count("`") == 6
    assert "<!here>" not in out


def test_code_clips_inside_the_span() -> None:
    out = code("&" * 100, 20)
    assert out.startswith("`") and out.endswith("…`")
    assert len(out) <= 22
    assert not ENTITY_TAIL.search(out[1:-2])


def test_a_cut_ends_after_a_whole_word_with_an_ellipsis() -> None:
    text = "this is not a message: Give the raw message (.eml) or its headers."
    for limit in range(20, len(text)):
        out = clip(text, limit)
        assert len(out) <= limit and out.endswith("…")
        kept = out[:-1]
        assert text.startswith(kept) and text[len(kept)] in " ,:.(", out  # the next word is whole
    assert safe("Give the raw message <x>", 20) == "Give the raw…"


def test_clip() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "ab…"
    assert len(clip("x" * 5000, 3000)) == 3000


def test_prose_sets_what_mrkdwn_would_format_in_code_spans() -> None:
    out = safe(
        "“https://evil.example/reset-password” is not a tag=value pair; *a* ~b~ _c_ see https://x.example."
    )
    assert out == (
        "“`https://evil.example/reset-password`” is not a tag=value pair; `*a*` `~b~` `_c_` see "
        "`https://x.example`."
    )


def test_prose_keeps_existing_code_spans_and_escapes_inside_them() -> None:
    assert safe("as in `/dmarc check <!channel>`.") == "as in `/dmarc check &lt;!channel&gt;`."


def test_prose_clipped_never_leaves_a_span_open() -> None:
    out = safe("word " * 10 + "*bold* " * 100, 120)
    assert len(out) <= 120 and out.count("`") % 2 == 0
