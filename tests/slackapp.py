"""The app under test: the real Bolt app behind its real HTTP endpoint, on a free port, with its
Web API base URL pointed at the Slack stand-in and its DNS at a test server."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.slack.app import FEATURES, create_app
from bot.slack.features import Feature
from bot.slack.server import ThreadingWSGIServer, make_http_server
from bot.store.stores import open_stores
from handlers.dns.resolver import parse_nameserver
from tests.slackstub import SIGNING_SECRET, SlackClientSim, SlackStandIn


@dataclass
class RunningApp:
    """A started app: `sim` sends it signed requests as Slack would; `slack` records what it sent."""

    settings: Settings
    server: ThreadingWSGIServer
    thread: threading.Thread
    sim: SlackClientSim
    slack: SlackStandIn

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def app_settings(slack: SlackStandIn, db_path: Path, nameserver: str, **overrides: Any) -> Settings:
    """Settings as a single-workspace HTTP deployment would have them, pointed at the stand-ins."""
    settings = Settings(
        slack_bot_token="xoxb-test-token",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        db_path=str(db_path),
        nameservers=(parse_nameserver(nameserver),),
        port=0,
    )
    return dataclasses.replace(settings, **overrides)


def start_app(
    settings: Settings, slack: SlackStandIn, features: tuple[Feature, ...] = FEATURES
) -> RunningApp:
    """Serve the app with `features` over HTTP on a free loopback port."""
    app = create_app(settings, open_stores(settings.db_path), features)
    server = make_http_server(app, "127.0.0.1", settings.port)
    # server.shutdown() returns once serve_forever next wakes: polling every 50 ms stops a test's
    # app in milliseconds instead of the default half second.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="dmarcbot-http", daemon=True)
    thread.start()
    port = server.server_address[1]
    sim = SlackClientSim(f"http://127.0.0.1:{port}", stand_in=slack)
    return RunningApp(settings, server, thread, sim, slack)
