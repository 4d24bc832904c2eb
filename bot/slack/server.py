"""`dmarcbot serve`: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on $PORT.

HTTP requests are served one thread each (Bolt acks a request and runs its listener in its own
pool), so one slow check never queues the next command's ack behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings
from bot.limits import MAX_REQUEST_BODY_BYTES, REQUEST_TIMEOUT_SECONDS
from bot.monitor.scheduler import MonitorScheduler
from bot.reports.imap import start_imap_poller
from bot.slack.app import create_app
from bot.store.stores import open_stores

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("dmarcbot")

EVENTS_PATH = "/slack/events"


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # The listen backlog: socketserver's default of 5 resets connections when a channel sends
    # a burst of commands at once; each is accepted at once and acked from its own thread.
    request_queue_size = 512


class QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


def _refuse(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    # The rest of the body is never read: wsgiref serves one request per connection and closes it.
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


class _BoundedInput:
    """wsgi.input that yields at most `limit` bytes, whatever the client goes on sending."""

    def __init__(self, stream: object, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._stream.read(wanted) if wanted > 0 else b""  # type: ignore[attr-defined]
        self._left -= len(data)
        return data


def limit_request_body(app: WSGIApplication, limit: int = MAX_REQUEST_BODY_BYTES) -> WSGIApplication:
    """Refuse a body over `limit` with 413 before anything (the signature check included) reads
    it, and never read more than `limit` bytes of any body."""

    def bounded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_TRANSFER_ENCODING"):
            # wsgiref does not decode chunked bodies, and Slack always sends Content-Length: a
            # body of unknown length is refused unread (RFC 9110 §15.5.12).
            return _refuse(start_response, "411 Length Required", "Content-Length is required")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(start_response, "400 Bad Request", "Content-Length is not a number")
        if length < 0:
            return _refuse(start_response, "400 Bad Request", "Content-Length is negative")
        if length > limit:
            return _refuse(
                start_response,
                "413 Content Too Large",
                f"the body is {length:,} bytes; at most {limit:,} are accepted",
            )
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _BoundedInput(environ["wsgi.input"], length)
        return app(environ, start_response)

    return bounded


def make_http_server(app: App, host: str, port: int) -> ThreadingWSGIServer:
    """The app's HTTP endpoint: /slack/events, plus /slack/install and /slack/oauth_redirect
    when OAuth is configured; a body over MAX_REQUEST_BODY_BYTES is refused unread."""
    handler = limit_request_body(SlackRequestHandler(app, path=EVENTS_PATH))
    server = make_server(host, port, handler, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    assert isinstance(server, ThreadingWSGIServer)
    return server


def serve(settings: Settings) -> None:
    """Run the bot until interrupted."""
    if settings.ephemeral_disk:
        log.warning(
            "This platform's disk is ephemeral (DYNO is set): %s is wiped at every deploy "
            "and restart. Keep DMARCBOT_DB on persistent storage; see the README.",
            settings.db_path,
        )
    # Opened once, here: migrations run before any listener or the monitor touches the database,
    # and every part of the process gets these same stores.
    stores = open_stores(settings.db_path)
    app = create_app(settings, stores)
    scheduler = MonitorScheduler(settings, stores)
    scheduler.start()
    imap = start_imap_poller(settings, stores)  # None unless DMARCBOT_IMAP_* are set
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("dmarcbot: Socket Mode")
            SocketModeHandler(app, settings.slack_app_token).start()  # type: ignore[no-untyped-call]
            return
        server = make_http_server(app, "0.0.0.0", settings.port)
        log.info("dmarcbot: HTTP on port %d at %s", settings.port, EVENTS_PATH)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        scheduler.stop()
        if imap is not None:
            imap.stop()
