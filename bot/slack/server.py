"""`dmarcbot serve`: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on $PORT.

HTTP requests are served one thread each (Bolt acks a request and runs its listener in its own
pool), so one slow check never queues the next command's ack behind it.
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings
from bot.monitor.scheduler import MonitorScheduler
from bot.reports.imap import start_imap_poller
from bot.slack.app import create_app
from bot.store.database import shared_store

log = logging.getLogger("dmarcbot")

EVENTS_PATH = "/slack/events"


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


def make_http_server(app: App, host: str, port: int) -> ThreadingWSGIServer:
    """The app's HTTP endpoint: /slack/events, plus /slack/install and /slack/oauth_redirect
    when OAuth is configured."""
    handler = SlackRequestHandler(app, path=EVENTS_PATH)
    server = make_server(host, port, handler, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    assert isinstance(server, ThreadingWSGIServer)
    return server


def start_http_in_thread(
    settings: Settings, host: str = "127.0.0.1", poll_interval: float = 0.05
) -> tuple[ThreadingWSGIServer, threading.Thread]:
    """Serve the app over HTTP in a background thread (port 0 picks a free one).

    `server.shutdown()` returns only once serve_forever next wakes up: a short poll interval
    stops it in a few milliseconds instead of the default half second."""
    server = make_http_server(create_app(settings), host, settings.port)
    thread = threading.Thread(
        target=server.serve_forever, args=(poll_interval,), name="dmarcbot-http", daemon=True
    )
    thread.start()
    return server, thread


def serve(settings: Settings) -> None:
    """Run the bot until interrupted."""
    if settings.ephemeral_disk:
        log.warning(
            "This platform's disk is ephemeral (DYNO is set): %s is wiped at every deploy "
            "and restart. Keep DMARCBOT_DB on persistent storage; see the README.",
            settings.db_path,
        )
    # Migrations run once, here, before any listener or the monitor touches the database.
    store = shared_store(settings.db_path)
    app = create_app(settings)
    scheduler = MonitorScheduler(settings, store)
    scheduler.start()
    imap = start_imap_poller(settings, store)  # None unless DMARCBOT_IMAP_* are set
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
