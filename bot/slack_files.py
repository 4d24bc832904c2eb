"""Reading what people share in Slack: a file's bytes (with the bot token) and a message's text
back as the plain text that was pasted."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
from typing import Any

DOWNLOAD_TIMEOUT = 20.0


class FileRefused(ValueError):
    """The file could not be read, or is not what we can use; the message says which and why."""


def download_file(file: dict[str, Any], token: str, limit: int) -> bytes:
    """A shared file's bytes, at most `limit`, fetched with the bot token as Slack requires."""
    url = file.get("url_private_download") or file.get("url_private")
    name = str(file.get("name") or "the file")[:100]
    if not url or not str(url).startswith(("https://", "http://")):
        raise FileRefused(f"{name} has no download address I can use")
    size = file.get("size")
    if isinstance(size, int) and size > limit:
        raise FileRefused(f"{name} is {size:,} bytes; the limit is {limit:,}")
    request = urllib.request.Request(str(url), headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            # Without a valid token Slack answers 200 with its HTML sign-in page, not the file.
            if "text/html" in response.headers.get("Content-Type", ""):
                raise FileRefused(f"Slack did not let me download {name} (it answered with a "
                                  "sign-in page): check that the app has the files:read scope")
            data: bytes = response.read(limit + 1)
    except urllib.error.URLError as error:
        raise FileRefused(f"downloading {name} failed: {error}") from None
    if len(data) > limit:
        raise FileRefused(f"{name} is larger than the limit of {limit:,} bytes")
    return data


_SLACK_LINK = re.compile(r"<(?:mailto:)?([^<>|]*)\|([^<>]*)>|<(?:mailto:)?([^<>|]*)>")
_CODE_FENCE = re.compile(r"^```|```$")


def pasted_text(message_text: str) -> str:
    """Undo what Slack does to pasted text: its <link|label> markup, HTML entities, code fences."""
    text = _SLACK_LINK.sub(lambda m: m.group(2) if m.group(1) is not None else m.group(3) or "",
                           message_text.strip())
    text = _CODE_FENCE.sub("", text.strip()).strip("\n")
    return html.unescape(text)
