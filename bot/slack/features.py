"""What a feature contributes to the Slack app, declared as data, and how the factory gathers it.

The contributions are the `/dmarc` rows with their workers, the App Home sections, the listeners.

Importing a feature module changes no global state; only bot/slack/app.py's list decides what the
running app offers (and what `/dmarc help` lists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App

from bot.config import Settings
from bot.slack.routing import Router, Subcommand
from bot.slack.turn import SlackTurn
from bot.slack.work import WorkPool
from bot.store.stores import Stores

# worker(job_args, turn, body) runs after the ack of a subcommand whose Job names it.
Worker = Callable[[dict[str, Any], SlackTurn, dict[str, Any]], None]
# section(settings, stores, team_id) -> the blocks a feature adds to the App Home tab of that team.
HomeSection = Callable[[Settings, Stores, str | None], list[dict[str, Any]]]
# register(app, settings, stores, pool) attaches a feature's own listeners; they ack, then hand
# the slow part to `pool`.
Register = Callable[[App, Settings, Stores, WorkPool], None]


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One feature's contribution: `subcommands` in help order, `workers` by Job.work name,
    `home_section` for the App Home tab, `register` to attach its own listeners."""

    name: str
    subcommands: tuple[Subcommand, ...] = ()
    workers: Mapping[str, Worker] = field(default_factory=dict)
    home_section: HomeSection | None = None
    register: Register | None = None


@dataclass(frozen=True)
class Gathered:
    """Every feature's declarations put together, in the order of the features."""

    router: Router
    workers: Mapping[str, Worker]
    home_sections: tuple[HomeSection, ...]
    registers: tuple[Register, ...]


def gather(features: Iterable[Feature]) -> Gathered:
    """Put the declarations together; a name declared twice is a wiring mistake, refused here."""
    rows: list[Subcommand] = []
    workers: dict[str, Worker] = {}
    sections: list[HomeSection] = []
    registers: list[Register] = []
    for feature in features:
        for row in feature.subcommands:
            if any(row.name == seen.name for seen in rows):
                raise ValueError(f"/dmarc {row.name} is declared twice (again by {feature.name})")
            rows.append(row)
        for name, worker in feature.workers.items():
            if name in workers:
                raise ValueError(f"worker {name} is declared twice (again by {feature.name})")
            workers[name] = worker
        if feature.home_section is not None:
            sections.append(feature.home_section)
        if feature.register is not None:
            registers.append(feature.register)
    return Gathered(Router(tuple(rows)), workers, tuple(sections), tuple(registers))
