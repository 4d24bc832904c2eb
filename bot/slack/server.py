"""`dmarcbot serve`: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on $PORT.

HTTP requests are served one thread each (Bolt acks a request and runs its listener in its own
pool), so one slow check never queues the next command's ack behind it.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings
from bot.monitor.scheduler import MonitorScheduler
from bot.reports.imap import start_imap_poller
from bot.slack.app import create_app
from bot.store.stores import open_stores

log = logging.getLogger("dmarcbot")

EVENTS_PATH = "/slack/events"


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # The listen backlog: socketserver's default of 5 resets connections when a channel sends
    # a burst of commands at once; each is accepted at once and acked from its own thread.
    request_queue_size = 512


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
