"""The watch list from the command line: `watch`, `unwatch`, `list`, `monitor`, `export`, `import`.

`monitor --once` runs one monitor cycle, for cron.

The database is DMARCBOT_DB (default ./dmarcbot.db). Watches belong to a Slack workspace, chosen
by bot.cli.common.resolve_team: `--team`, else SLACK_TEAM_ID, else the database's only workspace, else
`local`. Set SLACK_TEAM_ID to your workspace's id (T…) so that watches added here show up in
Slack's `/dmarc list`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import (
    EXIT_OK,
    TEAM_ID,
    AddCommand,
    add_nameserver_flag,
    domain_argument,
    load_settings,
    open_command_stores,
    resolve_team,
)
from bot.cli.terminal_text import terminal_safe
from bot.limits import MAX_IMPORT_BYTES, MAX_IMPORT_DEPTH
from handlers.errors import BadInput

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store.stores import Stores
    from bot.store.watches import NewWatch, Watch, WatchStore

# Test-only: `monitor --once` exits right after the outbox is written, before anything is posted,
# as a crash there would. tests/test_cli_watch.py uses it to prove a restart posts exactly once.
CRASH_AFTER_OUTBOX_ENV = "DMARCBOT_TEST_CRASH_AFTER_OUTBOX"
CRASH_EXIT_CODE = 70
EXPORT_FORMAT = "dmarcbot-watches"
EXPORT_VERSION = 1

_SLACK_ID = re.compile(r"^[A-Z0-9]{2,30}$")


def _team(args: argparse.Namespace, settings: Settings, watches: WatchStore) -> str:
    return resolve_team(args.team, settings, watches.teams())


def _channel(text: str) -> str:
    channel = text.strip()
    if not _SLACK_ID.match(channel) or channel[0] not in "CGD":
        raise BadInput(
            f"--channel {text!r} is not a Slack channel id: use the id (like "
            "C0123ABCD, from the channel's details), not its name"
        )
    return channel


def _selectors(texts: list[str] | None) -> list[str]:
    from handlers.domain.dkim_keys import InvalidSelector, validate_selectors

    try:
        return validate_selectors(texts or [])
    except InvalidSelector as error:
        raise BadInput(str(error)) from None


def command_watch(args: argparse.Namespace) -> int:
    """Watch a domain: alerts about it go to --channel; its first check runs now as the baseline."""
    from bot.monitor.cycle import check_watch, record_observation
    from bot.monitor.watch_state import observe
    from handlers.dns.domain_name import first_mention

    domain, channel = domain_argument(args.domain), _channel(args.channel)
    selectors = _selectors(args.selector)
    settings = load_settings(args.nameserver)
    store = open_command_stores(settings).watches
    team = _team(args, settings, store)
    watch, newly = store.add_watch(team, channel, domain, selectors, added_by="cli")
    report = check_watch(watch, settings.dns_session(), settings.https_client())
    record_observation(store, watch, observe(report))
    verb = "Watching" if newly else "Updated the watch of"
    print(
        f"{verb} {first_mention(domain)} for team {team}; alerts go to channel {channel}"
        + (f"; DKIM selectors {', '.join(selectors)}" if selectors else "")
        + "."
    )
    print(f"First check: {terminal_safe(report.summary, one_line=True)}")
    return EXIT_OK


def command_unwatch(args: argparse.Namespace) -> int:
    """Stop watching a domain (its history and undelivered alerts are deleted)."""
    from handlers.dns.domain_name import first_mention

    domain, settings = domain_argument(args.domain), load_settings()
    store = open_command_stores(settings).watches
    team = _team(args, settings, store)
    if not store.remove_watch(team, domain):
        raise BadInput(f"{domain} is not watched for team {team}: `dmarcbot list` shows the watched domains")
    print(f"Stopped watching {first_mention(domain)} for team {team}.")
    return EXIT_OK


def command_list(args: argparse.Namespace) -> int:
    """List the watched domains: channel, last check, status."""
    settings = load_settings()
    store = open_command_stores(settings).watches
    team = _team(args, settings, store)
    watches = store.watches(team)
    if args.json:
        print(json.dumps([w.to_json() for w in watches], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not watches:
        print(f"No domain is watched for team {team}.")
        return EXIT_OK
    print(_table(watches))
    return EXIT_OK


def _table(watches: list[Watch]) -> str:
    rows = [("DOMAIN", "CHANNEL", "LAST CHECK", "STATUS", "SELECTORS", "DIGEST")]
    rows += [
        (
            w.domain,
            w.channel_id,
            (w.last_checked_at or "never").replace("T", " ")[:16],
            w.last_status or "-",
            ",".join(w.selectors) or "-",
            w.digest or "-",
        )
        for w in watches
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        terminal_safe(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            one_line=True,
        )
        for row in rows
    )


def command_monitor(args: argparse.Namespace) -> int:
    """Check every watched domain and post the alerts (--once: one cycle, then exit; for cron).

    Without --once a cycle runs every DMARCBOT_MONITOR_INTERVAL seconds until interrupted."""
    from bot.monitor.alert_delivery import client_for_team_factory, deliver_pending
    from bot.monitor.scheduler import check_as_configured
    from bot.reports.failure_alerts import announce_as_configured

    settings = load_settings(args.nameserver)
    stores = open_command_stores(settings)
    if not args.once:
        return _monitor_forever(settings, stores)
    cycle = check_as_configured(settings, stores)
    if os.environ.get(CRASH_AFTER_OUTBOX_ENV) == "1":
        sys.stdout.flush()
        os._exit(CRASH_EXIT_CODE)  # test-only: die as a crash would, with the outbox written
    announce_as_configured(stores, settings)  # new failure groups, folded into one an hour
    clients = client_for_team_factory(settings)
    delivery = deliver_pending(stores.outbox, clients)
    print(
        f"Checked {cycle.watches} watches ({cycle.domains} domains, {cycle.queries} DNS "
        f"queries, {cycle.outages} with DNS failures); {cycle.alerts_written} alerts written, "
        f"{delivery.alerts_posted} posted in {delivery.messages_posted} messages, "
        f"{delivery.alerts_pending} pending"
        + (
            f" ({delivery.alerts_claimed_elsewhere} being posted by another monitor)."
            if delivery.alerts_claimed_elsewhere
            else "."
        )
    )
    if delivery.alerts_pending and not (settings.slack_bot_token or settings.oauth):
        print(
            "Alerts stay pending: set SLACK_BOT_TOKEN (or the OAuth settings) to post them.", file=sys.stderr
        )
    for problem in [*cycle.errors, *delivery.errors]:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_OK


def _monitor_forever(settings: Settings, stores: Stores) -> int:
    from bot.monitor.scheduler import MonitorScheduler

    scheduler = MonitorScheduler(settings, stores)
    scheduler.start()
    try:
        scheduler.wait()
    except KeyboardInterrupt:
        scheduler.stop()
        return 130
    return EXIT_OK


def command_export(args: argparse.Namespace) -> int:
    """Print the watch list as JSON (every team, or --team's), for a backup or another host."""
    store = open_command_stores(load_settings()).watches
    teams = [args.team] if args.team else store.teams()
    watches = [w for team in teams for w in store.watches(team)]
    print(
        json.dumps(
            {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "watches": [
                    {
                        **{key: w.to_json()[key] for key in ("team_id", "channel_id", "domain")},
                        # The named ones: a probe's finds are found again by the importer's cycle.
                        "selectors": list(w.selectors),
                        **{key: w.to_json()[key] for key in ("added_by", "created_at")},
                    }
                    for w in watches
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return EXIT_OK


def command_import(args: argparse.Namespace) -> int:
    """Add the watches of a JSON file made by `dmarcbot export` (`-` reads stdin); all or none."""
    text = _read_import(args.file)
    entries = parse_export(text, args.file)
    store = open_command_stores(load_settings()).watches
    added = store.add_watches(entries)  # one transaction: all of them, or none even when killed
    print(
        f"Imported {len(entries)} watches from {args.file} ({added} new, "
        f"{len(entries) - added} updated). Their first monitor cycle takes the baseline."
    )
    return EXIT_OK


def _read_import(name: str) -> str:
    """The import file's text, at most MAX_IMPORT_BYTES of it, or a BadInput saying why not."""
    too_big = (
        f"{name} is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB, larger than any export: "
        "give a file made by `dmarcbot export`"
    )
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)
        else:
            path = Path(name)
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise BadInput(too_big)
            with path.open("rb") as file:
                raw = file.read(MAX_IMPORT_BYTES + 1)
    except OSError as error:
        raise BadInput(f"cannot read {name}: {error.strerror or error}") from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise BadInput(too_big)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{name} is not UTF-8 text: give a file made by `dmarcbot export`") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_NESTING = re.compile(r"[\[\]{}]")


def _nesting_depth(text: str) -> int:
    """How deep the JSON text's arrays and objects nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _JSON_NESTING.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_export(text: str, source: str) -> list[NewWatch]:
    """Validate a whole export file; the first problem found is raised as a BadInput."""
    depth = _nesting_depth(text)
    if depth > MAX_IMPORT_DEPTH:
        raise BadInput(
            f"{source} nests arrays and objects {depth} deep, over the limit of {MAX_IMPORT_DEPTH} "
            "(an export nests 4): give a file made by `dmarcbot export`"
        )
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(
            f"{source} is not JSON ({error.msg}, line {error.lineno}): give a file made by `dmarcbot export`"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != EXPORT_FORMAT
        or not isinstance(data.get("watches"), list)
    ):
        raise BadInput(
            f"{source} is not a dmarcbot watch export: expected an object with "
            f'"format": "{EXPORT_FORMAT}" and a "watches" list'
        )
    version = data.get("version")
    if type(version) is not int or version != EXPORT_VERSION:  # not isinstance: True == 1
        raise BadInput(
            f"{source} has export version {json.dumps(version)[:40]}; this dmarcbot "
            f"reads version {EXPORT_VERSION}"
        )
    entries = []
    for number, item in enumerate(data["watches"], start=1):
        entries.append(_entry(item, f"{source}: watch #{number}"))
    return entries


def _entry(item: Any, where: str) -> NewWatch:
    try:
        if not isinstance(item, dict):
            raise BadInput("is not an object")
        for name in ("team_id", "channel_id", "domain"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise BadInput(f"has no {name!r} (a non-empty string)")
        if not TEAM_ID.match(item["team_id"]):
            raise BadInput(f"team_id {item['team_id']!r} is not a Slack team id")
        selectors = item.get("selectors", [])
        if not isinstance(selectors, list) or not all(isinstance(s, str) for s in selectors):
            raise BadInput("selectors must be a list of strings")
        added_by = item.get("added_by")
        return (
            item["team_id"],
            _channel(item["channel_id"]),
            domain_argument(item["domain"]),
            _selectors(selectors),
            added_by if isinstance(added_by, str) else None,
        )
    except BadInput as error:
        raise BadInput(f"{where} {error}") from None


def register_commands(add: AddCommand) -> None:
    """`watch`, `unwatch`, `list`, `monitor`, `export`, `import`."""

    def team_flag(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--team",
            metavar="TEAM_ID",
            help="the Slack workspace id (default: $SLACK_TEAM_ID, else the "
            "database's only workspace, else 'local')",
        )

    watch = add("watch", command_watch)
    watch.add_argument("domain", metavar="DOMAIN", help="the domain, e.g. example.com")
    watch.add_argument(
        "--channel",
        required=True,
        metavar="CHANNEL_ID",
        help="the Slack channel id that gets the alerts (C…)",
    )
    team_flag(watch)
    watch.add_argument(
        "--selector",
        action="append",
        metavar="SEL",
        help="DKIM selector to watch (repeatable); without it common selectors are probed",
    )
    add_nameserver_flag(watch)

    unwatch = add("unwatch", command_unwatch)
    unwatch.add_argument("domain", metavar="DOMAIN")
    team_flag(unwatch)

    listing = add("list", command_list)
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    team_flag(listing)

    monitor = add("monitor", command_monitor)
    monitor.add_argument(
        "--once", action="store_true", help="run one cycle, post the alerts and exit (for cron)"
    )
    add_nameserver_flag(monitor)

    export = add("export", command_export)
    export.add_argument("--team", metavar="TEAM_ID", help="only this workspace's watches")

    importing = add("import", command_import)
    importing.add_argument("file", metavar="FILE", help="a file made by `dmarcbot export`, or -")
