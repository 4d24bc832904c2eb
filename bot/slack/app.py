"""The Bolt app factory: settings in, a configured App out; nothing read from the environment here."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore
from slack_sdk.oauth.state_store.sqlite3 import SQLite3OAuthStateStore

from bot.config import Settings
from bot.slack.deliveries import DeliveryLog, register_deduplication
from bot.slack.features import Feature, gather
from bot.slack.installations import install_callbacks
from bot.slack.listeners import (
    aggregate_reports,
    apply,
    check_report,
    commands,
    digest,
    failure_reports,
    fixit,
    home,
    watch,
    why,
)
from bot.slack.listeners import tls_reports as tls_report_listeners
from bot.slack.routing import HELP
from bot.slack.work import WorkPool
from bot.store.stores import Stores

# files:write: the report chart goes up with files_upload_v2. No im:read / mpim:read: `/dmarc watch`
# in a DM is refused (alerts need a channel), so the app never reads a DM's details.
# usergroups:read: DMARCBOT_APPROVERS may name user groups, expanded when someone approves an Apply.
BOT_SCOPES = [
    "commands",
    "chat:write",
    "files:read",
    "files:write",
    "channels:read",
    "groups:read",
    "usergroups:read",
]

# Everything the app offers, in the order `/dmarc help` and the App Home list it. A feature
# left out of this list is not reachable: importing its module registers nothing.
FEATURES: tuple[Feature, ...] = (
    commands.CHECK,  # /dmarc check
    why.WHY,  # /dmarc why, its modal, the "Why did DMARC fail?" shortcut
    Feature(name="help", subcommands=(HELP,)),  # /dmarc help
    aggregate_reports.REPORTS,  # /dmarc report, shared report files
    tls_report_listeners.TLS_REPORTS,  # /dmarc tls
    failure_reports.FAILURES,  # /dmarc failures
    watch.WATCH,  # /dmarc watch, unwatch, list; the Home tab's watch list
    digest.DIGEST,  # /dmarc digest: a watch's scheduled report digest
    check_report.REPORT_BUTTONS,  # a report's Re-check and Watch buttons
    fixit.FIX_IT,  # a finding's Fix it button, the modal, Verify
    apply.APPLY,  # a plan's Apply and Roll back buttons and their confirmation
)

log = logging.getLogger("dmarcbot.slack")


def make_web_client(settings: Settings, token: str | None) -> WebClient:
    """A WebClient for our Web API base URL that waits out a 429's Retry-After and tries again."""
    client = WebClient(token=token, base_url=settings.slack_api_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


# Bolt's own listener threads only parse, ack and hand work to the WorkPool: a few suffice.
LISTENER_THREADS = 16


def create_app(
    settings: Settings, stores: Stores, features: tuple[Feature, ...] = FEATURES, pool: WorkPool | None = None
) -> App:
    """Build the app with `features`: single-token, or OAuth with Bolt's SQLite installation store
    in our database. `stores` is the process's one set of stores (opened, and so migrated, by the
    entry point); the listeners get it, and `pool` (the work after each ack), when they are
    registered."""
    pool = pool or WorkPool()
    oauth_settings = None
    token = settings.slack_bot_token
    if settings.oauth:
        token = None
        installations = SQLite3InstallationStore(
            database=settings.db_path, client_id=settings.slack_client_id or ""
        )
        oauth_settings = OAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret,
            scopes=BOT_SCOPES,
            installation_store=installations,
            state_store=SQLite3OAuthStateStore(database=settings.db_path, expiration_seconds=600),
            callback_options=install_callbacks(installations),
        )
    app = App(
        # The token travels in the client (our base URL, our 429 handling): Bolt takes it from
        # there. Given here as well, Bolt ignores it and warns at every start.
        token=None,
        # Socket Mode needs no signature (the socket is authenticated); HTTP always verifies.
        signing_secret=settings.slack_signing_secret or "",
        client=make_web_client(settings, token),
        oauth_settings=oauth_settings,
        # An unknown token must not stop a test or a dev run from starting; auth errors surface
        # on the first call instead.
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="bolt-listener"
        ),
    )
    register_deduplication(app, DeliveryLog(stores.slack_state))
    gathered = gather(features)
    commands.register(app, settings, stores, pool, gathered.router, gathered.workers)
    home.register(app, settings, stores, gathered.router, gathered.home_sections)
    for register in gathered.registers:
        register(app, settings, stores, pool)
    register_catch_all(app)
    return app


def register_catch_all(app: App) -> None:
    """Acknowledge every event no listener above took. Bolt answers an unmatched request 404;
    Slack then retries the event (X-Slack-Retry-Num) and, when failures persist, disables the
    app's event subscriptions. Registered last: Bolt runs the first listener that matches."""

    @app.event(re.compile(".*"))
    def acknowledge_unhandled_event(event: dict[str, Any]) -> None:
        log.debug("event %s: nothing to do", event.get("type"))
