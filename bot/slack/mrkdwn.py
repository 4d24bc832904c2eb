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
    return re.sub(r"&[a-z]*$", "", escaped[: limit - 1]) + "…"


def code(text: str, limit: int = 1500) -> str:
    """Untrusted text as an inline code span: escaped, clipped, and unable to close the span."""
    return f"`{safe(text.replace('`', 'ˋ'), limit)}`"


def code_block(text: str, limit: int = 2500) -> str:
    """Untrusted text as a code block, escaped and clipped."""
    return f"```{safe(text.replace('`', 'ˋ'), limit)}```"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
