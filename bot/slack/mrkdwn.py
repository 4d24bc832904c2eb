"""Make untrusted text (from DNS, a message or a report) safe to show in Slack mrkdwn.

Neither Bolt nor slack_sdk escapes for us. Unescaped, a TXT record could ping
`<!channel>` or plant a disguised `<https://evil|link>`; a backtick run could close a code block.
"""

from __future__ import annotations

import re


def escape(text: str) -> str:
    """Escape &, < and > (in that order, as Slack documents) so nothing is read as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str, limit: int = 2000) -> str:
    """Escaped and clipped to `limit` characters after escaping, never cutting an entity in two."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    return _cut_at_word(escaped, limit, entities=True) + "…"


def code(text: str, limit: int = 1500) -> str:
    """Untrusted text as an inline code span: escaped, clipped, and unable to close the span."""
    return f"`{safe(text.replace('`', 'ˋ'), limit)}`"


def code_block(text: str, limit: int = 2500) -> str:
    """Untrusted text as a code block, escaped and clipped."""
    return f"```{safe(text.replace('`', 'ˋ'), limit)}```"


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
