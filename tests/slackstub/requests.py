"""Signed requests into the app's real HTTP endpoint, shaped the way Slack sends them.

Slash commands are form-encoded; interactions (block_actions, view_submission, message_action) are a
form with one ``payload=`` field holding JSON; events are a JSON ``event_callback`` envelope. Every
request is signed with ``SIGNING_SECRET`` (v0 HMAC-SHA256 of ``v0:{timestamp}:{body}``), so Bolt's
request verification runs for real.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from .server import SlackStandIn

SIGNING_SECRET = "test-signing-secret"
VERIFICATION_TOKEN = "legacy-verification-token"  # Slack still sends the deprecated `token` field
APP_ID = "A0DMARCBOT"
BOT_USER_ID = "UBOT"
NOWHERE = "http://127.0.0.1:9/response/unset"  # discard port: refused at once, never the internet


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


_counter = itertools.count(1)


def new_trigger_id() -> str:
    """Shaped like Slack's (``13345224609.738474920.8088930838d88f008e0``); the first part is the issue
    time in milliseconds so the stand-in can refuse a views.open more than 3 s later."""
    return f"{int(time.time() * 1000)}.{next(_counter)}.{secrets.token_hex(10)}"


class SlackClientSim:
    """Plays Slack's side of the app's ``/slack/events`` endpoint.

    ``stand_in``: when given, each request gets its own ``response_url`` on it (``r1``, ``r2``, ...,
    see ``last_response_url``) unless one is passed explicitly.
    Every method returns ``(status, body_text)`` and takes ``forge_signature=True`` (a signature made
    with the wrong secret) and ``timestamp_offset=-600`` (a stale timestamp)."""

    def __init__(
        self,
        base_url: str,
        secret: str = SIGNING_SECRET,
        *,
        stand_in: SlackStandIn | None = None,
        path: str = "/slack/events",
        timeout: float = 10.0,
    ):
        self.url = base_url.rstrip("/") + path
        self.secret = secret
        self.stand_in = stand_in
        self.timeout = timeout
        self._n = itertools.count(1)
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None
        self.last_headers: dict[str, str] = {}
        self.last_elapsed: float = 0.0  # seconds until the app answered (Slack gives up after 3)

    # ------------------------------------------------------------------------------------ plumbing

    def _response_url(self, given: str | None) -> str:
        if given is not None:
            url = given
        elif self.stand_in is not None:
            url = self.stand_in.response_url(f"r{next(self._n)}")
        else:
            url = NOWHERE
        self.last_response_url = url
        return url

    def _trigger_id(self, given: str | None) -> str:
        self.last_trigger_id = given or new_trigger_id()
        return self.last_trigger_id

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
    ) -> tuple[int, str]:
        """POST raw bytes, signed, to the endpoint."""
        ts = int(time.time()) + timestamp_offset
        signed = sign(body, "not-the-secret" if forge_signature else self.secret, ts)
        all_headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **signed,
            **(headers or {}),
        }
        req = urllib.request.Request(self.url, data=body, headers=all_headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
                self.last_headers = dict(resp.headers.items())
        except urllib.error.HTTPError as e:
            with e:
                status, text = e.code, e.read().decode("utf-8", "replace")
                self.last_headers = dict(e.headers.items())
        self.last_elapsed = time.monotonic() - started
        return status, text

    def _form(self, fields: dict[str, Any], **opts: Any) -> tuple[int, str]:
        body = urlencode({k: _form_value(v) for k, v in fields.items()}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **opts)

    def _interaction(self, payload: dict[str, Any], **opts: Any) -> tuple[int, str]:
        return self._form({"payload": json.dumps(payload)}, **opts)

    # ------------------------------------------------------------------------------ slash commands

    def slash_command(
        self,
        text: str,
        command: str = "/dmarc",
        user_id: str = "U1",
        team_id: str = "T1",
        channel_id: str = "C1",
        response_url: str | None = None,
        trigger_id: str | None = None,
        *,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
        **extra: Any,
    ) -> tuple[int, str]:
        """Form-encoded, in Slack's field order; ``extra`` adds or overrides fields
        (e.g. ``channel_name="directmessage"``, ``enterprise_id=...``)."""
        fields: dict[str, Any] = {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": team_id.lower(),
            "channel_id": channel_id,
            "channel_name": channel_id.lower(),
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._response_url(response_url),
            "trigger_id": self._trigger_id(trigger_id),
        }
        fields.update(extra)
        return self._form(fields, forge_signature=forge_signature, timestamp_offset=timestamp_offset)

    # -------------------------------------------------------------------------------- interactions

    def block_action(
        self,
        action_id: str,
        value: str | None = None,
        block_id: str = "b",
        user_id: str = "U1",
        team_id: str = "T1",
        channel_id: str = "C1",
        message_ts: str = "1700000000.000100",
        response_url: str | None = None,
        trigger_id: str | None = None,
        view: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        *,
        action: dict[str, Any] | None = None,
        state_values: dict[str, Any] | None = None,
        ephemeral: bool = False,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
    ) -> tuple[int, str]:
        """A button click (``action`` replaces the whole action object, e.g. for a static_select).
        In a message by default; with ``view=`` it comes from a modal or the Home tab (no channel,
        message or response_url, like Slack); with ``ephemeral=True`` from a message only the
        user sees, which Slack sends with no ``message`` object (it cannot be updated, only
        replaced through the response_url)."""
        act = action or {
            "action_id": action_id,
            "block_id": block_id,
            "text": {"type": "plain_text", "text": value or action_id, "emoji": True},
            "value": value,
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if act.get("value") is None:
            act = {k: v for k, v in act.items() if k != "value"}
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": _user(user_id, team_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self._trigger_id(trigger_id),
            "team": {"id": team_id, "domain": team_id.lower()},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if view is not None:
            full_view = _view(view, team_id)
            payload["container"] = {"type": "view", "view_id": full_view["id"]}
            payload["view"] = full_view
            payload["state"] = {"values": state_values} if state_values is not None else full_view["state"]
        else:
            payload["container"] = {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            }
            payload["channel"] = {"id": channel_id, "name": channel_id.lower()}
            if not ephemeral:
                payload["message"] = message or {
                    "type": "message",
                    "subtype": "bot_message",
                    "text": "",
                    "user": BOT_USER_ID,
                    "bot_id": "BBOT",
                    "app_id": APP_ID,
                    "team": team_id,
                    "ts": message_ts,
                    "blocks": [],
                }
            payload["state"] = {"values": state_values or {}}
            payload["response_url"] = self._response_url(response_url)
        payload["actions"] = [act]
        return self._interaction(payload, forge_signature=forge_signature, timestamp_offset=timestamp_offset)

    def view_submission(
        self,
        callback_id: str,
        values: dict[str, Any],
        private_metadata: str = "",
        user_id: str = "U1",
        team_id: str = "T1",
        view_id: str = "V1",
        *,
        blocks: list[Any] | None = None,
        response_urls: list[Any] | None = None,
        trigger_id: str | None = None,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
    ) -> tuple[int, str]:
        """``values``: ``{block_id: {action_id: value}}``; a str value becomes a plain_text_input state,
        a dict is used as the state as is (e.g. ``{"type": "static_select", "selected_option": ...}``)."""
        state = {
            bid: {
                aid: (v if isinstance(v, dict) else {"type": "plain_text_input", "value": v})
                for aid, v in actions.items()
            }
            for bid, actions in values.items()
        }
        view = _view(
            {
                "id": view_id,
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "blocks": blocks or [],
                "state": {"values": state},
            },
            team_id,
        )
        payload = {
            "type": "view_submission",
            "team": {"id": team_id, "domain": team_id.lower()},
            "user": _user(user_id, team_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self._trigger_id(trigger_id),
            "view": view,
            "response_urls": response_urls or [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._interaction(payload, forge_signature=forge_signature, timestamp_offset=timestamp_offset)

    def message_shortcut(
        self,
        callback_id: str,
        message: dict[str, Any],
        channel_id: str = "C1",
        user_id: str = "U1",
        team_id: str = "T1",
        response_url: str | None = None,
        trigger_id: str | None = None,
        *,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
    ) -> tuple[int, str]:
        """A message shortcut (``message_action``) on ``message`` (needs at least ``ts`` and ``text``)."""
        msg = {"type": "message", "user": user_id, "team": team_id, **message}
        msg.setdefault("ts", "1700000000.000100")
        payload = {
            "type": "message_action",
            "token": VERIFICATION_TOKEN,
            "action_ts": f"{time.time():.6f}",
            "team": {"id": team_id, "domain": team_id.lower()},
            "user": _user(user_id, team_id),
            "channel": {"id": channel_id, "name": channel_id.lower()},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._trigger_id(trigger_id),
            "response_url": self._response_url(response_url),
            "message_ts": msg["ts"],
            "message": msg,
        }
        return self._interaction(payload, forge_signature=forge_signature, timestamp_offset=timestamp_offset)

    # -------------------------------------------------------------------------------------- events

    def event(
        self,
        event: dict[str, Any],
        team_id: str = "T1",
        retry_num: int | None = None,
        *,
        retry_reason: str = "http_timeout",
        event_id: str | None = None,
        forge_signature: bool = False,
        timestamp_offset: int = 0,
    ) -> tuple[int, str]:
        """A JSON ``event_callback`` envelope around ``event``. ``retry_num`` sets X-Slack-Retry-Num
        (and X-Slack-Retry-Reason); pass the same ``event_id`` to replay an event."""
        now = time.time()
        ev = dict(event)
        ev.setdefault("event_ts", f"{now:.6f}")
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": ev,
            "type": "event_callback",
            "event_id": event_id or f"Ev{int(now)}{next(self._n):04d}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_hex(16)}",
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.post(
            json.dumps(payload).encode(),
            "application/json",
            headers=headers,
            forge_signature=forge_signature,
            timestamp_offset=timestamp_offset,
        )

    def url_verification(
        self, challenge: str, *, forge_signature: bool = False, timestamp_offset: int = 0
    ) -> tuple[int, str]:
        payload = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return self.post(
            json.dumps(payload).encode(),
            "application/json",
            forge_signature=forge_signature,
            timestamp_offset=timestamp_offset,
        )

    # ------------------------------------------------------------------------------ event builders

    @staticmethod
    def message_event(
        text: str,
        user: str = "U1",
        channel: str = "C1",
        *,
        ts: str | None = None,
        channel_type: str = "channel",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        team: str = "T1",
    ) -> dict[str, Any]:
        """A ``message`` event (``channel_type="im"`` for a DM; ``files`` adds subtype file_share)."""
        ts = ts or f"{time.time():.6f}"
        ev: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": team,
            "channel": channel,
            "event_ts": ts,
            "channel_type": channel_type,
        }
        if thread_ts:
            ev["thread_ts"] = thread_ts
        if files:
            ev["subtype"] = "file_share"
            ev["files"] = files
            ev["upload"] = False
        return ev

    @staticmethod
    def app_mention_event(
        text: str, user: str = "U1", channel: str = "C1", *, ts: str | None = None, team: str = "T1"
    ) -> dict[str, Any]:
        ts = ts or f"{time.time():.6f}"
        return {
            "type": "app_mention",
            "user": user,
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "team": team,
            "channel": channel,
            "event_ts": ts,
        }


def _form_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "" if v is None else str(v)


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def _view(view: dict[str, Any], team_id: str) -> dict[str, Any]:
    """A view as Slack echoes it in interaction payloads (all the server-side fields present)."""
    view_id = view.get("id") or "V1"
    full: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": "dmarcbot", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": "BBOT",
    }
    full.update(view)
    return full
