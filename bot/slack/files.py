"""Reading what people share in Slack: a file's bytes, and a message's text as it was pasted.

Files are downloaded with the bot token.
"""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.errors import BadInput

DOWNLOAD_TIMEOUT = 30.0
_SIGN_IN_PAGE = (
    "Slack sent a sign-in page instead of the file: the bot token may not read it "
    "(is the files:read scope granted?)"
)


class FileRefused(BadInput):
    """The file could not be read, or is not what we can use; the message says which and why."""


EMAIL_APP = (
    "that file was forwarded into Slack by the Email app, which keeps no raw headers; attach the .eml instead"
)


def is_email_app_file(file: dict[str, Any]) -> bool:
    """A message forwarded into Slack by its Email app: Slack keeps a rendering, not the message."""
    return str(file.get("filetype", "")).lower() == "email"


def readable_file(file: dict[str, Any], client: WebClient) -> dict[str, Any]:
    """The file object to download from, as Slack's `files.info` describes it.

    Only the file's id is taken from the payload: the bot token then goes only where Slack's own API
    points, never to a URL a payload names. A file shared from another organisation (Slack Connect)
    arrives as a stub (`mode: file_access`, no URL) and gets its address the same way. Raises
    FileRefused when Slack will not say."""
    file_id = str(file.get("id") or "")
    if not file_id:
        raise FileRefused("Slack gave no id for the attached file")
    try:
        info = client.files_info(file=file_id).get("file") or {}
    except SlackApiError as error:
        code = error.response.get("error", "unknown error")
        raise FileRefused(f"Slack would not show me the file ({code})") from None
    if not (info.get("url_private_download") or info.get("url_private")):
        raise FileRefused(
            "Slack shares only a preview of that file with me (it comes from another organisation); "
            "download it and share it here again"
        )
    return dict(info)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError


def download_file(file: dict[str, Any], token: str, limit: int) -> bytes:
    """A shared file's bytes (at most `limit`), fetched with the bot token as Slack requires.
    Redirects are refused: Slack redirects to its sign-in page when the token may not read the
    file, and following one would carry the token to wherever it points."""
    url = file.get("url_private_download") or file.get("url_private")
    size = file.get("size")
    if isinstance(size, int) and size > limit:
        raise FileRefused(f"the file is {size:,} bytes, over the limit of {limit:,}")
    if not url or not str(url).startswith(("https://", "http://")):
        raise FileRefused("Slack gave no download address for it")
    request = urllib.request.Request(str(url), headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.build_opener(_NoRedirect()).open(request, timeout=DOWNLOAD_TIMEOUT) as response:
            data: bytes = response.read(limit + 1)
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            raise FileRefused(_SIGN_IN_PAGE) from None
        raise FileRefused(f"Slack answered HTTP {error.code} to the download") from None
    except (urllib.error.URLError, OSError) as error:
        raise FileRefused(f"the download failed: {getattr(error, 'reason', error)}") from None
    if len(data) > limit:
        raise FileRefused(f"the file is over the limit of {limit:,} bytes")
    if "text/html" in content_type.lower() or data.lstrip()[:15].lower().startswith(
        (b"<!doctype html", b"<html")
    ):
        raise FileRefused(_SIGN_IN_PAGE)
    return data


_SLACK_LINK = re.compile(r"<(?:mailto:)?([^<>|]*)\|([^<>]*)>|<(?:mailto:)?([^<>|]*)>")
_CODE_FENCE = re.compile(r"^```|```$")


def pasted_text(message_text: str) -> str:
    """Undo what Slack does to pasted text: its <link|label> markup, HTML entities, code fences."""
    text = _SLACK_LINK.sub(
        lambda m: m.group(2) if m.group(1) is not None else m.group(3) or "", message_text.strip()
    )
    text = _CODE_FENCE.sub("", text.strip()).strip("\n")
    return html.unescape(text)
