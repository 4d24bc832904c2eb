"""Socket Mode end to end: Bolt's SocketModeHandler (slack_sdk's built-in WebSocket client) connects
to a small WebSocket server this file owns, which plays Slack's side of the socket: it answers
`apps.connections.open` with its ws:// URL, says hello, sends envelopes and records the acks.
The report then arrives, like in HTTP mode, at the Slack stand-in through the Web API.

The WebSocket server is a few dozen lines of RFC 6455 over the standard library, so the tests need
no extra package. It is not in tests/slackstub, which other tests share.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.app import create_app
from bot.store.stores import open_stores
from handlers.dns.resolver import parse_nameserver
from tests.applog import capture_app_log, wait_for_log
from tests.dnstest import NsdServer, make_zone
from tests.slackstub import SlackStandIn

APP_TOKEN = "xapp-test"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


# --------------------------------------------------------------------------- the socket's far side


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """One client frame (clients mask theirs): (opcode, payload), or None when the peer is gone."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(length)
    if len(data) < length:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (servers do not mask)."""
    length = len(payload)
    if length <= 125:
        header = bytes([0x80 | opcode, length])
    elif length <= 0xFFFF:
        header = bytes([0x80 | opcode, 126]) + struct.pack("!H", length)
    else:
        header = bytes([0x80 | opcode, 127]) + struct.pack("!Q", length)
    return header + payload


class SocketModeServer:
    """Slack's Socket Mode endpoint: `apps.connections.open` over HTTP, then the WebSocket."""

    def __init__(self) -> None:
        self.opens: list[dict[str, str]] = []  # headers of each apps.connections.open
        self.received: list[dict[str, Any]] = []  # JSON messages from the app (acks)
        self._cond = threading.Condition()
        self._wfile: BinaryIO | None = None
        self._send_lock = threading.Lock()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _WsHandler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SocketModeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait_connected(self, timeout: float = 5.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._wfile is not None, timeout):
                raise AssertionError("the app never opened the WebSocket")

    def send(self, message: dict[str, Any]) -> None:
        assert self._wfile is not None
        with self._send_lock:
            self._wfile.write(frame(OP_TEXT, json.dumps(message).encode()))
            self._wfile.flush()

    def envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Send one envelope as Slack does; returns its envelope_id."""
        envelope_id = str(uuid.uuid4())
        self.send(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.received if m.get("envelope_id") == envelope_id), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"no ack for {envelope_id}; got {self.received}")
            ack = found()
            assert ack is not None
            return ack

    # called from the handler thread
    def _connected(self, wfile: BinaryIO) -> None:
        with self._cond:
            self._wfile = wfile
            self._cond.notify_all()

    def _message(self, message: dict[str, Any]) -> None:
        with self._cond:
            self.received.append(message)
            self._cond.notify_all()

    def _pong(self, payload: bytes) -> None:
        assert self._wfile is not None
        with self._send_lock:
            self._wfile.write(frame(OP_PONG, payload))
            self._wfile.flush()


class _WsHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def owner(self) -> SocketModeServer:
        owner: SocketModeServer = self.server.owner  # type: ignore[attr-defined]
        return owner

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/api/apps.connections.open":
            self._json({"ok": False, "error": "unknown_method"})
            return
        self.owner.opens.append(dict(self.headers.items()))
        if self.headers.get("Authorization") != f"Bearer {APP_TOKEN}":
            self._json({"ok": False, "error": "invalid_auth"})
            return
        port = self.owner.port
        self._json({"ok": True, "url": f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4()}"})

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if not self.path.startswith("/link/") or not key:
            self.send_error(404)
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.owner._connected(self.wfile)  # type: ignore[arg-type]
        self.owner.send(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "stand-in", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0DMARCBOT"},
            }
        )
        while True:
            got = read_frame(self.rfile)  # type: ignore[arg-type]
            if got is None:
                return
            opcode, payload = got
            if opcode == OP_PING:
                self.owner._pong(payload)
            elif opcode == OP_TEXT:
                self.owner._message(json.loads(payload))
            elif opcode == OP_CLOSE:
                return


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def socket_server() -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclasses.dataclass
class SocketApp:
    settings: Settings
    handler: SocketModeHandler


@pytest.fixture
def socket_app(
    nsd: NsdServer, slack: SlackStandIn, socket_server: SocketModeServer, tmp_path: Path
) -> Iterator[SocketApp]:
    """The app in Socket Mode: no signing secret (the socket is authenticated), its Web API at the
    Slack stand-in, and the socket client asking our server for the WebSocket URL."""
    nsd.set_zones(
        {
            "test": make_zone(
                "test",
                [
                    ("good", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
                    ("_dmarc.good", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"),
                ],
            )
        }
    )
    settings = Settings(
        slack_bot_token="xoxb-test-token",
        slack_signing_secret=None,
        slack_app_token=APP_TOKEN,
        slack_api_url=slack.api_url,
        db_path=str(tmp_path / "dmarcbot.db"),
        nameservers=(parse_nameserver(nsd.address),),
    )
    assert settings.socket_mode and settings.serve_problems() == []
    # The socket client's own WebClient only calls apps.connections.open (with the xapp- token);
    # the app's listeners keep using the app's client, pointed at the Slack stand-in.
    handler = SocketModeHandler(
        create_app(settings, open_stores(settings.db_path)),
        settings.slack_app_token,
        web_client=WebClient(base_url=socket_server.api_url),
    )
    handler.connect()  # type: ignore[no-untyped-call]
    try:
        socket_server.wait_connected()
        yield SocketApp(settings, handler)
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def slash_payload(slack: SlackStandIn, text: str, name: str = "r1") -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": "T1",
        "team_domain": "t1",
        "channel_id": "C1",
        "channel_name": "c1",
        "user_id": "U1",
        "user_name": "u1",
        "command": "/dmarc",
        "text": text,
        "api_app_id": "A0DMARCBOT",
        "is_enterprise_install": "false",
        "response_url": slack.response_url(name),
        "trigger_id": f"1.2.{name}",  # Slack gives every command a trigger of its own
    }


# ------------------------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_socket_mode_slash_command_acks_then_posts_the_report(
    socket_app: SocketApp, socket_server: SocketModeServer, slack: SlackStandIn
) -> None:
    assert socket_server.opens[0]["Authorization"] == f"Bearer {APP_TOKEN}"
    started = time.monotonic()
    envelope_id = socket_server.envelope("slash_commands", slash_payload(slack, "check good.test"))
    ack = socket_server.wait_ack(envelope_id)
    assert time.monotonic() - started < 1.0
    assert ack["payload"] == {"text": "Checking good.test…", "response_type": "ephemeral"}
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert post.params["channel"] == "C1"
    assert post.headers.get("authorization") == "Bearer xoxb-test-token"
    assert post.blocks[0]["text"]["text"] == "good.test: can pass DMARC"
    assert any(
        "```v=DMARC1; p=reject; rua=mailto:dmarc@good.test```" in b["text"]["text"]
        for b in post.blocks
        if b["type"] == "section"
    )
    slack.assert_no_violations()


@pytest.mark.slow
def test_socket_mode_help_and_bad_input_are_answered_in_the_ack(
    socket_app: SocketApp,
    socket_server: SocketModeServer,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_app_log(caplog)
    ack = socket_server.wait_ack(socket_server.envelope("slash_commands", slash_payload(slack, "help")))
    assert "`/dmarc check DOMAIN [SELECTOR...]`" in ack["payload"]["text"]
    ack = socket_server.wait_ack(
        socket_server.envelope("slash_commands", slash_payload(slack, "check 1.2.3.4", "r2"))
    )
    assert "is an IP address" in ack["payload"]["text"]
    wait_for_log(caplog, "answered in the acknowledgement", count=2)  # both listeners are over
    assert slack.posts() == []


@pytest.mark.slow
def test_socket_mode_button_and_event(
    socket_app: SocketApp, socket_server: SocketModeServer, slack: SlackStandIn
) -> None:
    # Re-check from a report message: acknowledged on the socket, the message updated by chat.update
    envelope_id = socket_server.envelope(
        "interactive",
        {
            "type": "block_actions",
            "user": {"id": "U1", "team_id": "T1"},
            "team": {"id": "T1"},
            "api_app_id": "A0DMARCBOT",
            "trigger_id": "1.2.3",
            "container": {
                "type": "message",
                "message_ts": "1700000000.000100",
                "channel_id": "C1",
                "is_ephemeral": False,
            },
            "channel": {"id": "C1"},
            "message": {"ts": "1700000000.000100", "text": "", "blocks": []},
            "response_url": slack.response_url("r3"),
            "actions": [
                {
                    "action_id": slack_ids.ACTION_RECHECK,
                    "block_id": slack_ids.BLOCK_REPORT_ACTIONS,
                    "type": "button",
                    "value": '{"d":"good.test","s":[]}',
                }
            ],
        },
    )
    socket_server.wait_ack(envelope_id)
    [update] = slack.wait_for("chat.update", 1, timeout=15)
    assert update.params["ts"] == "1700000000.000100"
    # App Home over the socket
    envelope_id = socket_server.envelope(
        "events_api",
        {
            "type": "event_callback",
            "team_id": "T1",
            "api_app_id": "A0DMARCBOT",
            "event": {"type": "app_home_opened", "user": "U7", "channel": "D7", "tab": "home"},
            "event_id": "Ev1",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        },
    )
    socket_server.wait_ack(envelope_id)
    [publish] = slack.wait_for("views.publish", 1)
    assert publish.params["user_id"] == "U7"
    slack.assert_no_violations()
