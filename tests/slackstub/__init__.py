"""Test-side stand-ins for Slack: its Web API server, its signed requests, Block Kit's limits."""

from .blockkit import Problem, check_message, check_view, message_problems, strings, view_problems
from .requests import SIGNING_SECRET, SlackClientSim, free_port, new_trigger_id, sign
from .server import APP_ID, BOT_ID, BOT_USER_ID, Call, SlackStandIn, parse_body

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "SIGNING_SECRET",
    "Call",
    "Problem",
    "SlackClientSim",
    "SlackStandIn",
    "check_message",
    "check_view",
    "free_port",
    "message_problems",
    "new_trigger_id",
    "parse_body",
    "sign",
    "strings",
    "view_problems",
]
