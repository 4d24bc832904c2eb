"""Who may approve applying (or rolling back) a fix plan, and the sentence that says who can.

DMARCBOT_APPROVERS names users and user groups (`S…`, expanded with usergroups.users.list at each
approval, so a change to the group counts at once); when it is set nobody else may approve. Under
DMARCBOT_APPLY_TWO_PEOPLE (the default) the person who proposed the plan cannot approve it: a
second person must. A Slack Connect user of another organisation never can.
"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings

CANNOT_APPROVE_FOREIGN = (
    "You are in another organisation sharing this channel: only members of the workspace that "
    "installed dmarcbot may approve a change to its DNS."
)


def who_can_approve(settings: Settings, proposer: str) -> str:
    """The people who may approve a plan proposed by `proposer`, as mrkdwn mentions."""
    if settings.approvers:
        names = ", ".join(f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in settings.approvers)
    else:
        names = "any member of this workspace"
    if settings.apply_two_people and proposer:
        names += f", other than <@{proposer}> who proposed it (two people must agree)"
    return names


def approval_refusal(
    settings: Settings, client: WebClient, proposer: str, user_id: str, foreign: bool
) -> str | None:
    """Why `user_id` may not approve a plan `proposer` posted (None: they may)."""
    if foreign:
        return CANNOT_APPROVE_FOREIGN
    can = who_can_approve(settings, proposer)
    if settings.approvers and not _is_approver(settings, client, user_id):
        return f"You are not one of the approvers. Who can approve: {can}."
    if settings.apply_two_people and user_id == proposer:
        return f"You proposed this plan, so you cannot approve it alone. Who can approve: {can}."
    return None


def _is_approver(settings: Settings, client: WebClient, user_id: str) -> bool:
    if user_id in settings.approvers:
        return True
    for group in (a for a in settings.approvers if a.startswith("S")):
        try:
            members = client.usergroups_users_list(usergroup=group).get("users") or []
        except SlackApiError:
            continue  # a group we cannot read approves nobody: refusing is the safe side
        if user_id in members:
            return True
    return False
