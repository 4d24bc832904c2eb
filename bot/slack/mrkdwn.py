"""Make untrusted text (from DNS, a message or a report) safe to show in Slack mrkdwn.

Neither Bolt nor slack_sdk escapes for us. Unescaped, a TXT record could ping
`<!channel>` or plant a disguised `<https://evil|link>`; a backtick run could close a code block.
"""

from __future__ import annotations

import re


def escape(text: str) -> str:
    """Escape &, < and > (in that order, as Slack documents) so nothing is read as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# What mrkdwn would format in plain text: a value quoted “like this” (how handlers quote what they
# refuse), and any word holding a formatting mark (*bold*, _italic_, ~strike~) or a URL, which
# Slack would turn into a link by itself; a word's closing punctuation stays outside its span.
_QUOTED = re.compile(r"“([^”\n]{1,500})”|`([^`\n]{1,500})`")
_FORMATTABLE_WORD = re.compile(r"[^\s“”(]*(?:[*_~]|://)[^\s“”`]*?(?=[).,;:!?]*(?:\s|$|“|”))")


def safe(text: str, limit: int = 2000) -> str:
    """Untrusted prose for mrkdwn: escaped, each quoted value and each word mrkdwn would format or
    link set in an inline code span (where Slack formats nothing), and at most `limit` characters,
    never cutting an entity or a code span in two."""
    rendered = _prose(text)
    if len(rendered) <= limit:
        return rendered
    keep = min(len(text), limit)
    while keep > 0:
        # the raw text is cut after a whole word, then rendered: a cut rendering could split a span
        head = text if keep >= len(text) else _cut_at_word(text, keep + 1)
        rendered = _prose(head) + "…"
        if len(rendered) <= limit:
            return rendered
        keep = min(keep - 1, keep * (limit - 1) // len(rendered))
    return "…"


def _prose(text: str) -> str:
    out: list[str] = []
    position = 0
    for quoted in _QUOTED.finditer(text):
        out.append(_words(text[position : quoted.start()]))
        # a value quoted “so”, or a code span already (ours, or one that formats nothing anyway)
        out.append(f"“{_span(quoted.group(1))}”" if quoted.group(1) is not None else _span(quoted.group(2)))
        position = quoted.end()
    out.append(_words(text[position:]))
    return "".join(out)


def _words(text: str) -> str:
    if "*" not in text and "_" not in text and "~" not in text and "://" not in text:
        return _plain(text)  # nothing _FORMATTABLE_WORD could match: most prose, at no regex cost
    out: list[str] = []
    position = 0
    for word in _FORMATTABLE_WORD.finditer(text):
        out.append(_plain(text[position : word.start()]))
        out.append(_span(word.group()))
        position = word.end()
    out.append(_plain(text[position:]))
    return "".join(out)


def _plain(text: str) -> str:
    return escape(text.replace("`", "ˋ"))  # a lone backtick would pair with one of ours


def _span(text: str) -> str:
    return f"`{escape(text.replace('`', 'ˋ'))}`"


def _escaped_clip(text: str, limit: int) -> str:
    """Escaped and clipped to `limit` characters after escaping, never cutting an entity in two."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    return _cut_at_word(escaped, limit, entities=True) + "…"


def code(text: str, limit: int = 1500) -> str:
    """Untrusted text as an inline code span: escaped, clipped, and unable to close the span."""
    return f"`{_escaped_clip(text.replace('`', 'ˋ'), limit)}`"


def code_block(text: str, limit: int = 2500) -> str:
    """Untrusted text as a code block, escaped and clipped."""
    return f"```{_escaped_clip(text.replace('`', 'ˋ'), limit)}```"


# Slack documents no length for a modal field's error; the text shows under the field, so it is
# kept to a few lines.
FIELD_ERROR_LIMIT = 300

# A cut looks back this far for a space; text without one (a key, a long record) is cut where it is.
_WORD_LOOKBACK = 40


def clip(text: str, limit: int) -> str:
    """At most `limit` characters; when cut, cut after a whole word and end with "…"."""
    return text if len(text) <= limit else _cut_at_word(text, limit) + "…"


def _cut_at_word(text: str, limit: int, entities: bool = False) -> str:
    """The start of `text` that leaves room for "…" within `limit`, ending after a whole word
    (and, for escaped text, never inside an entity)."""
    head = text[: limit - 1]
    if not text[limit - 1].isspace():
        space = max(head.rfind(" "), head.rfind("\n"))
        if space >= max(len(head) - _WORD_LOOKBACK, 1):
            head = head[:space]
    head = head.rstrip(" \n,:")
    if entities:
        head = re.sub(r"&[a-z]*$", "", head).rstrip(" \n")
    return head


def fit_lines(lines: list[str], limit: int = 2900) -> str:
    """Join whole lines of finished mrkdwn up to `limit` characters: cutting inside a line could
    split an escaped entity or leave a code span open."""
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit:
            kept.append("…")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)
