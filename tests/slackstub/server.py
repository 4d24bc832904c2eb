"""A stand-in for Slack's servers on loopback: Web API, response_url, file downloads and uploads.

Point the app at it with ``WebClient(base_url=stand_in.api_url)`` (Bolt: ``App(client=WebClient(...))``)
and put ``stand_in.response_url()`` in the requests the tests send. Every call is recorded; every
message and view is checked against Block Kit's limits (``blockkit.py``) and refused like Slack refuses
it, and the problem is kept in ``stand_in.violations``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from . import blockkit

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "A0DMARCBOT"
TEAM_ID = "T1"
TEAM_NAME = "Test"
TRIGGER_TTL = 3.0  # a trigger_id is good for 3 seconds

POST_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage")
VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")
JSON_IN_FORM = ("blocks", "attachments", "view", "files", "metadata", "options", "unfurls")
SIGNIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in</body></html>"
RESPONSE_URL_MAX_POSTS = 5  # per response_url, within 30 minutes


class Headers(dict[str, Any]):
    """Request headers, looked up case-insensitively (keys are stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return str(super().__getitem__(key.lower()))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Call:
    method: str  # Web API method, or "response_url", "files.download", "files.upload_url"
    params: dict[str, Any]
    headers: dict[str, Any]
    at: float
    status: int = 200
    response: Any = None  # the JSON (or text) answered
    path: str = ""

    @property
    def ok(self) -> bool:
        if self.status != 200:
            return False
        if isinstance(self.response, dict):
            return bool(self.response.get("ok"))
        return True

    @property
    def blocks(self) -> list[Any]:
        return self.params.get("blocks") or []

    @property
    def text(self) -> str:
        """The message's fallback text ("" when the call had none)."""
        return str(self.params.get("text") or "")


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    error: str | None
    times: int


@dataclass
class _Identity:
    team_id: str = TEAM_ID
    team: str = TEAM_NAME
    user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    user: str = "dmarcbot"
    enterprise_id: str | None = None  # a workspace inside an Enterprise Grid org


@dataclass
class _File:
    name: str
    data: bytes
    info: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict[str, Any])


class _StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    # Slack's servers take every connection; socketserver's backlog of 5 would reset the app's
    # posts when a burst of work ends at once, and the test would measure the stand-in.
    request_queue_size = 512


class SlackStandIn:
    """Answers like Slack's Web API on ``http://127.0.0.1:PORT/api/`` and records every call."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.reset()

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandIn:
        if self._server is not None:
            return self
        server = _StandInServer((self.host, 0), _Handler)
        server.stand_in = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="slack-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SlackStandIn is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``WebClient(base_url=...)`` takes: methods are POSTed to ``{api_url}{method}``."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base_url}/response/{quote(name, safe='')}"

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/files/{quote(name, safe='')}/download"

    # -------------------------------------------------------------------------------- configuration

    def reset(self) -> None:
        """Forget calls, violations, faults and configuration (channels, users, files, tokens)."""
        with self._cond:
            self._calls: list[Call] = []
            self.violations: list[str] = []
            self._faults: dict[str, list[_Fault]] = {}
            self._delays: dict[str, float] = {}
            self._channels: dict[str, dict[str, Any]] = {}
            self._users: dict[str, dict[str, Any]] = {}
            self._tokens: dict[str, _Identity] = {}
            self._files: dict[str, _File] = {}  # by name
            self._pending_uploads: dict[str, dict[str, Any]] = {}  # file_id -> {filename, length, data}
            self._uploads: list[dict[str, Any]] = []
            self._views: dict[str, dict[str, Any]] = {}
            self._messages: dict[tuple[str, str], dict[str, Any]] = {}
            self._response_url_posts: dict[str, int] = {}
            self._ts = itertools.count(1)
            self._oauth: dict[str, Any] = {}
            self._usergroups: dict[str, list[str]] = {}

    def set_channel(
        self,
        channel_id: str,
        *,
        is_member: bool = True,
        name: str | None = None,
        is_private: bool = False,
        exists: bool = True,
        **extra: Any,
    ) -> None:
        """``is_member=False``: conversations.info says so and chat.postMessage answers ``not_in_channel``
        until conversations.join. ``exists=False``: channel_not_found everywhere."""
        with self._cond:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name or channel_id.lower(),
                "is_channel": not is_private,
                "is_group": is_private,
                "is_im": False,
                "is_private": is_private,
                "is_archived": False,
                "is_member": is_member,
                "context_team_id": TEAM_ID,
                "_exists": exists,
                **extra,
            }

    def set_user(self, user_id: str, team_id: str = TEAM_ID, **fields: Any) -> None:
        with self._cond:
            self._users[user_id] = {**self._default_user(user_id, team_id), **fields}

    def set_usergroup(self, group_id: str, users: Sequence[str]) -> None:
        """What usergroups.users.list answers for `group_id` (unknown groups: no_such_subteam)."""
        with self._cond:
            self._usergroups[group_id] = list(users)

    def set_token(
        self,
        token: str,
        *,
        team_id: str = TEAM_ID,
        team: str = TEAM_NAME,
        user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
    ) -> None:
        """What auth.test (and team.info) answer for this token. Unknown tokens are team T1's bot."""
        with self._cond:
            self._tokens[token] = _Identity(team_id=team_id, team=team, user_id=user_id, bot_id=bot_id)

    def set_oauth(self, **overrides: Any) -> None:
        """Override fields of the oauth.v2.access answer (e.g. team={"id": "T2", "name": "Other"},
        access_token=..., bot_user_id=..., scope=...). The bot token is registered for auth.test."""
        with self._cond:
            self._oauth = dict(overrides)

    def add_file(
        self,
        name: str,
        data: bytes,
        filename: str | None = None,
        mimetype: str = "application/octet-stream",
        *,
        title: str | None = None,
        filetype: str | None = None,
        user: str = "U1",
        shares: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]] | None = None,
    ) -> dict[str, Any]:
        """Serve ``data`` at ``file_url(name)`` (needs ``Authorization: Bearer xoxb-...``) and return a
        Slack file object for files.info answers and ``files`` in message events.

        ``shares`` says which messages shared the file where, as files.info's ``shares`` does:
        ``{"public" | "private": {channel_id: [{"ts": ..., "thread_ts": ...}, ...]}}`` (``thread_ts``
        only for a share inside a thread). Without it the file object has no ``shares``."""
        filename = filename or name
        shares_copy = _check_shares(shares) if shares is not None else None
        with self._cond:
            file_id = f"F{next(self._ids):08d}"
            info = self._file_object(file_id, name, filename, data, mimetype, title, filetype, user)
            if shares_copy is not None:
                info["shares"] = shares_copy
            self._files[name] = _File(name=name, data=data, info=info)
            return copy.deepcopy(info)

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` fail. ``error=`` alone: HTTP 200 with ok false and that
        error. ``status=429``: Retry-After header and ``ratelimited``. Other statuses: that HTTP status.
        ``method`` may also be "response_url" (answered with ``error`` as plain text)."""
        if error is not None and status == 429:
            status = 200
        with self._cond:
            self._faults.setdefault(method, []).append(
                _Fault(
                    status=status,
                    retry_after=retry_after if status == 429 else None,
                    error=error,
                    times=times,
                )
            )

    def delay(self, method: str, seconds: float) -> None:
        """Answer every call of ``method`` ``seconds`` late (a slow Slack); the call is recorded when
        its answer is sent."""
        with self._cond:
            self._delays[method] = seconds

    # ------------------------------------------------------------------------------------ inspection

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def last(self, method: str) -> Call:
        found = self.calls(method)
        if not found:
            raise AssertionError(f"no {method} call; calls so far: {self._summary()}")
        return found[-1]

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0, *, ok_only: bool = False
    ) -> list[Call]:
        """Block until ``count`` calls of ``method`` (successful ones with ``ok_only``) arrived."""
        deadline = time.monotonic() + timeout

        def matching() -> list[Call]:
            return [c for c in self._calls if c.method == method and (c.ok or not ok_only)]

        with self._cond:
            while len(matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {count} {method} call(s), got {len(matching())}; "
                        f"calls so far: {self._summary()}"
                    )
                self._cond.wait(left)
            return matching()

    def posts(self, *, include_failed: bool = False) -> list[Call]:
        """Successful chat.postMessage / chat.update / chat.postEphemeral / response_url posts, in order."""
        with self._cond:
            return [c for c in self._calls if c.method in POST_METHODS and (include_failed or c.ok)]

    def wait_for_posts(self, count: int = 1, timeout: float = 5.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.posts()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {count} post(s), got {len(self.posts())}; "
                        f"calls so far: {self._summary()}"
                    )
                self._cond.wait(left)
            return self.posts()

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages as they now stand (after chat.update / chat.delete), in posting order."""
        with self._cond:
            return [dict(m) for (ch, _ts), m in self._messages.items() if channel is None or ch == channel]

    def view(self, view_id: str) -> dict[str, Any]:
        with self._cond:
            return dict(self._views[view_id])

    def uploads(self) -> list[dict[str, Any]]:
        """Files completed through files_upload_v2: id, filename, title, data, channel_id, ..."""
        with self._cond:
            return [dict(u) for u in self._uploads]

    def assert_no_violations(self) -> None:
        __tracebackhide__ = True
        with self._cond:
            if self.violations:
                raise AssertionError(
                    "Slack would refuse or the project forbids:\n  " + "\n  ".join(self.violations)
                )

    def _summary(self) -> str:
        return ", ".join(f"{c.method}({c.status})" for c in self._calls) or "none"

    # ----------------------------------------------------------------------------------- internals

    def _record(self, call: Call) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _violation(self, where: str, problems: Iterable[Any]) -> None:
        with self._cond:
            for p in problems:
                self.violations.append(f"{where}: {p}")

    def _take_fault(self, method: str) -> _Fault | None:
        with self._cond:
            faults = self._faults.get(method)
            if not faults:
                return None
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            return fault

    def _next_ts(self) -> str:
        with self._cond:
            n = next(self._ts)
        return f"{1700000000 + n // 10000}.{(n % 10000) * 100:06d}"

    def _identity(self, token: str | None) -> _Identity:
        with self._cond:
            return self._tokens.get(token or "", _Identity())

    @staticmethod
    def _default_user(user_id: str, team_id: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "team_id": team_id,
            "name": user_id.lower(),
            "real_name": f"User {user_id}",
            "deleted": False,
            "is_bot": user_id == BOT_USER_ID,
            "is_admin": False,
            "is_owner": False,
            "tz": "Europe/Berlin",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {"display_name": user_id.lower(), "real_name": f"User {user_id}", "team": team_id},
        }

    def _file_object(
        self,
        file_id: str,
        name: str,
        filename: str,
        data: bytes,
        mimetype: str,
        title: str | None,
        filetype: str | None,
        user: str,
    ) -> dict[str, Any]:
        url = self.file_url(name) if self._server is not None else f"/files/{quote(name, safe='')}/download"
        return {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": filename,
            "title": title or filename,
            "mimetype": mimetype,
            "filetype": filetype or (filename.rsplit(".", 1)[-1].lower() if "." in filename else "binary"),
            "pretty_type": filetype or mimetype,
            "user": user,
            "user_team": TEAM_ID,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "size": len(data),
            "url_private": url,
            "url_private_download": url,
            "permalink": f"https://test.slack.com/files/{user}/{file_id}/{quote(filename)}",
        }

    # ------------------------------------------------------------------------------ API dispatch

    def _api(
        self, method: str, params: dict[str, Any], headers: Headers
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Returns (status, body, extra response headers)."""
        with self._cond:
            late = self._delays.get(method, 0.0)
        if late:
            time.sleep(late)
        fault = self._take_fault(method)
        if fault is not None:
            if fault.status == 429:
                return (
                    429,
                    {"ok": False, "error": fault.error or "ratelimited"},
                    {"Retry-After": str(fault.retry_after if fault.retry_after is not None else 1)},
                )
            if fault.status != 200:
                return fault.status, {"ok": False, "error": fault.error or "fatal_error"}, {}
            return 200, {"ok": False, "error": fault.error or "unknown_error"}, {}

        token = _bearer(headers) or params.get("token")
        if method != "oauth.v2.access" and not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method != "oauth.v2.access" and not str(token).startswith("xox"):
            return 200, {"ok": False, "error": "invalid_auth"}, {}

        if method in MESSAGE_METHODS:
            problems = blockkit.message_problems(params)
            fatal = [p for p in problems if p.error]
            if problems:
                self._violation(method, problems)
            if fatal:
                return 200, _refusal(fatal[0].error or blockkit.INVALID_BLOCKS, fatal), {}
        if method in VIEW_METHODS:
            view = params.get("view")
            problems = (
                blockkit.view_problems(view)
                if view is not None
                else [blockkit.Problem("/view", "view is required", blockkit.INVALID_ARGUMENTS)]
            )
            if problems:
                self._violation(method, problems)
            if any(p.error for p in problems):
                body = _refusal(blockkit.INVALID_ARGUMENTS, [p for p in problems if p.error])
                body.pop("errors", None)
                return 200, body, {}

        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": True}, {}
        return 200, handler(params, token), {}

    # --- auth / team / users

    def _m_auth_test(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        ident = self._identity(token)
        return {
            "ok": True,
            "url": f"https://{ident.team.lower()}.slack.com/",
            "team": ident.team,
            "user": ident.user,
            "team_id": ident.team_id,
            "user_id": ident.user_id,
            "bot_id": ident.bot_id,
            "enterprise_id": ident.enterprise_id,
            "is_enterprise_install": False,
        }

    def _m_team_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        ident = self._identity(token)
        team_id = params.get("team") or ident.team_id
        return {
            "ok": True,
            "team": {
                "id": team_id,
                "name": ident.team if team_id == ident.team_id else team_id,
                "domain": (ident.team if team_id == ident.team_id else team_id).lower(),
                "email_domain": "",
                "icon": {"image_default": True},
            },
        }

    def _m_usergroups_users_list(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._cond:
            users = self._usergroups.get(str(params.get("usergroup")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}

    def _m_users_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        user_id = params.get("user")
        if not user_id:
            return {"ok": False, "error": "user_not_found"}
        with self._cond:
            user = self._users.get(user_id)
        if user is None:
            user = self._default_user(user_id, self._identity(token).team_id)
        return {"ok": True, "user": user}

    def _m_oauth_v2_access(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not params.get("code"):
            return {"ok": False, "error": "invalid_code"}
        with self._cond:
            n = next(self._ids)
            body: dict[str, Any] = {
                "ok": True,
                "app_id": APP_ID,
                "authed_user": {
                    "id": "U1",
                    "scope": "",
                    "access_token": None,
                    "token_type": None,
                },
                "scope": "commands,chat:write,chat:write.public,channels:read,files:read,files:write,"
                "users:read,im:history,app_mentions:read",
                "token_type": "bot",
                "access_token": f"xoxb-{n}-{n}-stand-in",
                "bot_user_id": BOT_USER_ID,
                "team": {"id": TEAM_ID, "name": TEAM_NAME},
                "enterprise": None,
                "is_enterprise_install": False,
            }
            body.update(self._oauth)
            team = body.get("team") or {}
            self._tokens.setdefault(
                body["access_token"],
                _Identity(
                    team_id=team.get("id", TEAM_ID),
                    team=team.get("name", TEAM_NAME),
                    user_id=body.get("bot_user_id") or BOT_USER_ID,
                    enterprise_id=(body.get("enterprise") or {}).get("id"),
                ),
            )
        return body

    # --- conversations

    def _channel(self, channel_id: str) -> dict[str, Any]:
        with self._cond:
            ch = self._channels.get(channel_id)
            if ch is None:
                self.set_channel(channel_id)
                ch = self._channels[channel_id]
            return ch

    def _public_channel(self, channel_id: str) -> dict[str, Any]:
        return {k: v for k, v in self._channel(channel_id).items() if not k.startswith("_")}

    def _m_conversations_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = params.get("channel") or ""
        if not channel_id or not self._channel(channel_id)["_exists"]:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": self._public_channel(channel_id)}

    def _m_conversations_join(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel_id = params.get("channel") or ""
        if not channel_id or not self._channel(channel_id)["_exists"]:
            return {"ok": False, "error": "channel_not_found"}
        with self._cond:
            ch = self._channels[channel_id]
            if ch["is_private"]:
                return {"ok": False, "error": "method_not_supported_for_channel_type"}
            already = ch["is_member"]
            ch["is_member"] = True
        body = {"ok": True, "channel": self._public_channel(channel_id)}
        if already:
            body["warning"] = "already_in_channel"
        return body

    # --- chat

    def _postable(self, channel_id: str | None) -> str | None:
        if not channel_id:
            return "channel_not_found"
        if channel_id[:1] in ("U", "W", "D"):
            return None
        ch = self._channel(channel_id)
        if not ch["_exists"]:
            return "channel_not_found"
        if not ch["is_member"]:
            return "not_in_channel"
        return None

    def _message_echo(self, params: dict[str, Any], ts: str, token: str | None) -> dict[str, Any]:
        ident = self._identity(token)
        msg: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": params.get("text") or "",
            "user": ident.user_id,
            "bot_id": ident.bot_id,
            "app_id": APP_ID,
            "team": ident.team_id,
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                msg[key] = params[key]
        return msg

    def _m_chat_postMessage(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel = params.get("channel")
        error = self._postable(channel)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        msg = self._message_echo(params, ts, token)
        with self._cond:
            self._messages[(str(channel), ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": msg}

    def _m_chat_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "message_not_found"}
        msg = self._message_echo(params, str(ts), token)
        with self._cond:
            old = self._messages.get((str(channel), str(ts)))
            if old is not None:
                if "blocks" not in params:
                    msg.pop("blocks", None)
                self._messages[(str(channel), str(ts))] = {**msg, "edited": {"user": msg["user"], "ts": ts}}
        return {"ok": True, "channel": channel, "ts": ts, "text": msg["text"], "message": msg}

    def _m_chat_postEphemeral(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        error = self._postable(params.get("channel"))
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_delete(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        with self._cond:
            self._messages.pop((str(channel), str(ts)), None)
        return {"ok": True, "channel": channel, "ts": ts}

    # --- views

    def _trigger_problem(self, method: str, trigger_id: Any) -> str | None:
        if not trigger_id:
            return "invalid_trigger_id"
        first = str(trigger_id).split(".", 1)[0]
        if first.isdigit() and len(first) == 13:  # SlackClientSim embeds its issue time in ms
            age = time.time() - int(first) / 1000
            if abs(age) < 86400 and age > TRIGGER_TTL:
                self._violation(method, [f"trigger_id used {age:.1f}s after the click (Slack allows 3s)"])
                return "expired_trigger_id"
        return None

    def _store_view(
        self, view: dict[str, Any], token: str | None, view_id: str | None = None, previous: str | None = None
    ) -> dict[str, Any]:
        ident = self._identity(token)
        with self._cond:
            view_id = view_id or f"V{next(self._ids):010d}"
            stored = {
                "id": view_id,
                "team_id": ident.team_id,
                "type": view.get("type"),
                "blocks": view.get("blocks", []),
                "private_metadata": view.get("private_metadata", ""),
                "callback_id": view.get("callback_id", ""),
                "state": {"values": {}},
                "hash": f"{int(time.time())}.{_digest(view)}",
                "title": view.get("title"),
                "clear_on_close": bool(view.get("clear_on_close", False)),
                "notify_on_close": bool(view.get("notify_on_close", False)),
                "close": view.get("close"),
                "submit": view.get("submit"),
                "previous_view_id": previous,
                "root_view_id": view_id,
                "app_id": APP_ID,
                "external_id": view.get("external_id", ""),
                "app_installed_team_id": ident.team_id,
                "bot_id": ident.bot_id,
            }
            self._views[view_id] = stored
            return dict(stored)

    def _m_views_open(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        error = self._trigger_problem("views.open", params.get("trigger_id"))
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "view": self._store_view(params["view"], token)}

    def _m_views_push(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        error = self._trigger_problem("views.push", params.get("trigger_id"))
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "view": self._store_view(params["view"], token)}

    def _m_views_update(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        with self._cond:
            if not view_id and external_id:
                view_id = next(
                    (v["id"] for v in self._views.values() if v.get("external_id") == external_id), None
                )
                if view_id is None:
                    return {"ok": False, "error": "not_found"}
            if not view_id:
                return {"ok": False, "error": "invalid_arguments"}
            current = self._views.get(view_id)
            if current is not None and params.get("hash") and params["hash"] != current["hash"]:
                return {"ok": False, "error": "hash_conflict"}
        return {"ok": True, "view": self._store_view(params["view"], token, view_id=view_id)}

    def _m_views_publish(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not params.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": self._store_view(params["view"], token)}

    # --- files

    def _file_by_id(self, file_id: str) -> _File | None:
        with self._cond:
            return next((f for f in self._files.values() if f.info["id"] == file_id), None)

    def _m_files_info(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        f = self._file_by_id(str(params.get("file") or ""))
        if f is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": dict(f.info), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _m_files_upload(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        self._violation("files.upload", ["files.upload was retired on 2025-11-12; use files_upload_v2"])
        return {"ok": False, "error": "method_deprecated"}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length in (None, "") or not str(length).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        with self._cond:
            file_id = f"F{next(self._ids):08d}"
            self._pending_uploads[file_id] = {
                "filename": filename,
                "length": int(length),
                "data": None,
                "alt_txt": params.get("alt_txt"),
            }
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        ident = self._identity(token)
        channel_id = params.get("channel_id") or None
        initial_comment = params.get("initial_comment")
        if isinstance(initial_comment, str):
            problems = blockkit._mentions("/initial_comment", initial_comment)
            if problems:
                self._violation("files.completeUploadExternal", problems)
        out = []
        with self._cond:
            for item in files:
                pending = self._pending_uploads.get(str(item.get("id")))
                if pending is None or pending["data"] is None:
                    return {"ok": False, "error": "file_not_found"}
            for item in files:
                file_id = str(item["id"])
                pending = self._pending_uploads.pop(file_id)
                name = f"{file_id}-{pending['filename']}"
                info = self._file_object(
                    file_id,
                    name,
                    pending["filename"],
                    pending["data"],
                    "application/octet-stream",
                    item.get("title"),
                    None,
                    ident.user_id,
                )
                if channel_id:
                    info["channels"] = [channel_id]
                self._files[name] = _File(name=name, data=pending["data"], info=info)
                self._uploads.append(
                    {
                        "id": file_id,
                        "filename": pending["filename"],
                        "title": item.get("title") or pending["filename"],
                        "data": pending["data"],
                        "channel_id": channel_id,
                        "channels": params.get("channels"),
                        "initial_comment": initial_comment,
                        "thread_ts": params.get("thread_ts"),
                    }
                )
                out.append(
                    {k: info[k] for k in ("id", "title", "name")} | {"url_private": info["url_private"]}
                )
        return {"ok": True, "files": out}

    def _upload_bytes(self, file_id: str, data: bytes) -> tuple[int, str]:
        with self._cond:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                return 404, "Not Found"
            pending["data"] = data
        if len(data) != pending["length"]:
            self._violation(
                "files.upload_url",
                [f"{file_id}: length was announced as {pending['length']}, {len(data)} bytes were sent"],
            )
        return 200, f"OK - {len(data)}"

    # --- response_url

    def _response_url(self, name: str, payload: Any, raw_ok: bool) -> tuple[int, str]:
        fault = self._take_fault("response_url")
        if fault is not None:
            return (fault.status if fault.status != 200 else 404), fault.error or "invalid_payload"
        if not raw_ok or not isinstance(payload, dict):
            self._violation("response_url", [f"{name}: body is not a JSON object"])
            return 400, "invalid_payload"
        with self._cond:
            used = self._response_url_posts.get(name, 0) + 1
            self._response_url_posts[name] = used
        if used > RESPONSE_URL_MAX_POSTS:
            self._violation(
                "response_url",
                [f"{name}: post #{used}; a response_url takes at most {RESPONSE_URL_MAX_POSTS}"],
            )
            return 404, "used_url"
        problems = blockkit.message_problems(payload)
        if problems:
            self._violation(f"response_url {name}", problems)
        fatal = [p for p in problems if p.error]
        if fatal:
            return 400, fatal[0].error or "invalid_blocks"
        return 200, "ok"

    # --- downloads

    def _download(self, name: str, headers: Headers) -> tuple[int, bytes, dict[str, str]]:
        with self._cond:
            f = self._files.get(name)
        token = _bearer(headers)
        authorized = bool(token) and str(token).startswith(("xoxb-", "xoxp-"))
        self._record(
            Call(
                "files.download",
                {"name": name, "authorized": authorized},
                headers,
                time.time(),
                status=200 if (f and authorized) else (404 if f is None else 302),
                path=name,
            )
        )
        if f is None:
            return 404, b"Not Found", {"Content-Type": "text/plain"}
        if not authorized:
            # Like Slack: no token, no file; a redirect to the sign-in page (HTML, status 200 after it).
            return 302, b"", {"Location": f"{self.base_url}/signin?redir={quote(self.file_url(name))}"}
        return (
            200,
            f.data,
            {
                "Content-Type": f.info["mimetype"],
                "Content-Disposition": f'attachment; filename="{f.info["name"]}"',
            },
        )


def _check_shares(shares: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]) -> dict[str, Any]:
    """A copy of ``shares`` in files.info's shape, or ValueError saying what is off."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind, channels in shares.items():
        if kind not in ("public", "private"):
            raise ValueError(f"shares: kind must be 'public' or 'private', not {kind!r}")
        if not isinstance(channels, Mapping):
            raise ValueError(f"shares[{kind!r}] must map channel ids to lists of shares")
        out[kind] = {}
        for channel, entries in channels.items():
            if not isinstance(channel, str) or not channel:
                raise ValueError(f"shares[{kind!r}]: channel id must be a non-empty string, not {channel!r}")
            if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
                raise ValueError(f"shares[{kind!r}][{channel!r}] must be a list of shares")
            out[kind][channel] = []
            for entry in entries:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("ts"), str):
                    raise ValueError(f"shares[{kind!r}][{channel!r}]: each share needs a string 'ts'")
                if "thread_ts" in entry and not isinstance(entry["thread_ts"], str):
                    raise ValueError(f"shares[{kind!r}][{channel!r}]: 'thread_ts' must be a string")
                out[kind][channel].append(copy.deepcopy(dict(entry)))
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _bearer(headers: Headers) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


def _refusal(error: str, problems: list[blockkit.Problem]) -> dict[str, Any]:
    texts = [str(p) for p in problems]
    return {
        "ok": False,
        "error": error,
        "errors": texts,
        "response_metadata": {"messages": [f"[ERROR] {t}" for t in texts]},
    }


def parse_body(content_type: str, raw: bytes, query: str = "") -> dict[str, Any]:
    """Form-encoded, JSON or multipart body (plus the query string) as a dict; JSON-in-form fields
    (blocks, attachments, view, files, ...) are decoded."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        body = json.loads(raw.decode("utf-8") or "{}")
        if isinstance(body, dict):
            params.update(body)
        else:
            params["_json"] = body
    elif ctype == "multipart/form-data":
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
        )
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            if part.get_filename():
                params[str(name)] = payload
                params.setdefault("_filename", part.get_filename())
            else:
                params[str(name)] = payload.decode("utf-8")
    elif raw:
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in JSON_IN_FORM:
        val = params.get(key)
        if isinstance(val, str) and val[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # left as a string otherwise: blockkit reports it
                params[key] = json.loads(val)
    return params


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackStandIn/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def stand_in(self) -> SlackStandIn:
        stand_in: SlackStandIn = self.server.stand_in  # type: ignore[attr-defined]
        return stand_in

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", extra)

    def do_POST(self) -> None:
        self._dispatch(self._read())

    def do_GET(self) -> None:
        self._dispatch(b"")

    def _dispatch(self, raw: bytes) -> None:
        split = urlsplit(self.path)
        path, query = split.path, split.query
        headers = Headers(self.headers.items())
        try:
            if path.startswith("/api/"):
                self._api(path[len("/api/") :], raw, query, headers)
            elif path.startswith("/response/"):
                self._response(unquote(path[len("/response/") :]), raw, headers)
            elif path.startswith("/upload/"):
                file_id = unquote(path[len("/upload/") :])
                status, text = self.stand_in._upload_bytes(file_id, raw)
                self.stand_in._record(
                    Call(
                        "files.upload_url",
                        {"file_id": file_id, "size": len(raw)},
                        headers,
                        time.time(),
                        status=status,
                        response=text,
                        path=path,
                    )
                )
                self._send(status, text.encode(), "text/plain; charset=utf-8")
            elif path.startswith("/files/") and path.endswith("/download"):
                name = unquote(path[len("/files/") : -len("/download")])
                status, data, extra = self.stand_in._download(name, headers)
                ctype = extra.pop("Content-Type", "application/octet-stream")
                self._send(status, data, ctype, extra)
            elif path == "/signin":
                self._send(200, SIGNIN_PAGE, "text/html; charset=utf-8")
            else:
                self._send(404, b"Not Found", "text/plain")
        except Exception as e:  # a bug here must fail the test, not hang the app
            self.stand_in._violation("stand-in", [f"{self.command} {path}: {type(e).__name__}: {e}"])
            self._json(500, {"ok": False, "error": "fatal_error"})

    def _api(self, method: str, raw: bytes, query: str, headers: Headers) -> None:
        try:
            params = parse_body(headers.get("content-type") or "", raw, query)
        except (ValueError, UnicodeDecodeError) as e:
            call = Call(
                method,
                {"_raw": raw},
                headers,
                time.time(),
                status=200,
                response={"ok": False, "error": "invalid_json"},
                path=self.path,
            )
            self.stand_in._violation(method, [f"unparseable body: {e}"])
            self.stand_in._record(call)
            self._json(200, call.response)
            return
        at = time.time()
        status, body, extra = self.stand_in._api(method, params, headers)
        self.stand_in._record(Call(method, params, headers, at, status=status, response=body, path=self.path))
        self._json(status, body, extra)

    def _response(self, name: str, raw: bytes, headers: Headers) -> None:
        payload: Any
        raw_ok = True
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError:
            payload, raw_ok = {"_raw": raw}, False
        at = time.time()
        status, text = self.stand_in._response_url(name, payload, raw_ok)
        self.stand_in._record(
            Call(
                "response_url",
                payload if isinstance(payload, dict) else {"_json": payload},
                headers,
                at,
                status=status,
                response=text,
                path=name,
            )
        )
        self._send(status, text.encode(), "text/plain; charset=utf-8")
