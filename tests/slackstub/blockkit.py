"""Block Kit checks for everything the app sends to Slack.

``check_message`` and ``check_view`` return human-readable violations (empty list = fine).
``message_problems`` / ``view_problems`` return the same as :class:`Problem` objects that also carry
the error code Slack itself would answer with (``None`` for a rule of this project that Slack would
accept, such as a missing fallback ``text`` or an ``<!channel>`` mention).

slack_sdk's ``validate_json()`` only validates the object it is called on, never nested ones (a section
with an 80-character button accessory passes), and it silently drops unknown block types
(``Block.parse`` returns ``None``). So this module walks the tree itself: every block and every element
is parsed and validated by slack_sdk, and the limits from REFERENCE.md are checked explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block, BlockElement
from slack_sdk.models.views import View

# Limits (Slack's Block Kit reference).
MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_TEXT_MAX = 40000
SECTION_TEXT_MAX = 3000
SECTION_FIELD_MAX = 2000
SECTION_FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
SELECT_OPTIONS_MAX = 100
ID_MAX = 255
VIEW_TITLE_MAX = 24
VIEW_BUTTON_MAX = 24
PRIVATE_METADATA_MAX = 3000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
INPUT_LABEL_MAX = 2000

# <!channel>, <!here>, <!everyone>, also with a label (<!here|here>). The app never sends these: one in
# an outgoing payload means text from DNS, a report or a message was not escaped.
MASS_MENTION = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>", re.IGNORECASE)

INVALID_BLOCKS = "invalid_blocks"
INVALID_ARGUMENTS = "invalid_arguments"
MSG_TOO_LONG = "msg_too_long"
NO_TEXT = "no_text"


@dataclass(frozen=True)
class Problem:
    where: str  # JSON-pointer-like location, e.g. "/blocks/3/text"
    message: str
    error: str | None  # what Slack answers (ok: false, error: ...), None when Slack would accept it

    def __str__(self) -> str:
        return f"{self.where or '/'}: {self.message}"


def check_message(payload: dict) -> list[str]:
    """Violations in a chat.postMessage / chat.update / chat.postEphemeral / response_url payload."""
    return [str(p) for p in message_problems(payload)]


def check_view(view: dict) -> list[str]:
    """Violations in the ``view`` of views.open / views.update / views.push / views.publish."""
    return [str(p) for p in view_problems(view)]


# --------------------------------------------------------------------------------------------- messages


def message_problems(payload: dict) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(payload, dict):
        return [Problem("", f"payload must be an object, got {type(payload).__name__}", INVALID_ARGUMENTS)]
    if payload.get("delete_original") in (True, "true", "1", 1):
        return out  # a response_url delete carries nothing else
    text = payload.get("text")
    blocks = payload.get("blocks")
    attachments = payload.get("attachments")
    has_text = isinstance(text, str) and text.strip() != ""
    if text is not None and not isinstance(text, str):
        out.append(Problem("/text", f"text must be a string, got {type(text).__name__}", INVALID_ARGUMENTS))
    if not has_text and not blocks and not attachments:
        out.append(Problem("", "message has no text, blocks or attachments", NO_TEXT))
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        out.append(Problem("/text", f"text is {len(text)} characters (max {MESSAGE_TEXT_MAX})", MSG_TOO_LONG))
    if blocks and not has_text:
        out.append(
            Problem(
                "/text",
                "blocks without a top-level text fallback (notifications, screen readers)",
                None,
            )
        )
    if isinstance(text, str) and payload.get("mrkdwn") not in (False, "false", "0", 0):
        out += _mentions("/text", text)
    if blocks is not None:
        out += _blocks(blocks, "/blocks", MESSAGE_MAX_BLOCKS, surface="message")
    if isinstance(attachments, list):
        for i, att in enumerate(attachments):
            if not isinstance(att, dict):
                continue
            for key in ("text", "pretext", "fallback"):
                if isinstance(att.get(key), str):
                    out += _mentions(f"/attachments/{i}/{key}", att[key])
            if att.get("blocks") is not None:
                out += _blocks(att["blocks"], f"/attachments/{i}/blocks", MESSAGE_MAX_BLOCKS, "message")
    return out


# ------------------------------------------------------------------------------------------------ views


def view_problems(view: dict) -> list[Problem]:
    err = INVALID_ARGUMENTS
    if not isinstance(view, dict):
        return [Problem("/view", f"view must be an object, got {type(view).__name__}", err)]
    out: list[Problem] = []
    vtype = view.get("type")
    if vtype not in ("modal", "home"):
        out.append(Problem("/view/type", f"view type must be modal or home, got {vtype!r}", err))
    known = set(View.attributes) | {"id", "team_id", "bot_id", "app_id", "root_view_id", "previous_view_id"}
    sdk: list[Problem] = []
    try:
        View(**{k: v for k, v in view.items() if k in known}).validate_json()
    except Exception as e:  # SlackObjectFormationError, or a TypeError from a malformed member
        sdk.append(Problem("/view", f"slack_sdk: {e}", err))
    if vtype == "modal":
        out += _text_object(
            view.get("title"), "/view/title", VIEW_TITLE_MAX, err, plain_only=True, required=True
        )
        for key in ("submit", "close"):
            if view.get(key) is not None:
                out += _text_object(view[key], f"/view/{key}", VIEW_BUTTON_MAX, err, plain_only=True)
    pm = view.get("private_metadata")
    if pm is not None:
        if not isinstance(pm, str):
            out.append(Problem("/view/private_metadata", "private_metadata must be a string", err))
        elif len(pm) > PRIVATE_METADATA_MAX:
            out.append(
                Problem("/view/private_metadata", f"{len(pm)} characters (max {PRIVATE_METADATA_MAX})", err)
            )
    for key in ("callback_id", "external_id"):
        val = view.get(key)
        if isinstance(val, str) and len(val) > ID_MAX:
            out.append(Problem(f"/view/{key}", f"{len(val)} characters (max {ID_MAX})", err))
    blocks = view.get("blocks")
    if blocks is None:
        out.append(Problem("/view/blocks", "blocks is required", err))
    else:
        out += [
            Problem(p.where, p.message, err if p.error else None)
            for p in _blocks(blocks, "/view/blocks", VIEW_MAX_BLOCKS, surface=vtype or "modal")
        ]
        if (
            vtype == "modal"
            and isinstance(blocks, list)
            and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
            and not view.get("submit")
        ):
            out.append(Problem("/view/submit", "a modal with input blocks needs a submit button", err))
    if not any(p.error for p in out):
        out = sdk + out
    return out


# ----------------------------------------------------------------------------------------------- blocks


def _blocks(blocks: Any, path: str, max_blocks: int, surface: str) -> list[Problem]:
    err = INVALID_BLOCKS
    if not isinstance(blocks, list):
        return [
            Problem(path, f"blocks must be an array, got {type(blocks).__name__}", "invalid_blocks_format")
        ]
    out: list[Problem] = []
    if len(blocks) > max_blocks:
        out.append(Problem(path, f"{len(blocks)} blocks (max {max_blocks} in a {surface})", err))
    block_ids: dict[str, int] = {}
    for i, block in enumerate(blocks):
        bp = f"{path}/{i}"
        if not isinstance(block, dict):
            out.append(Problem(bp, f"block must be an object, got {type(block).__name__}", err))
            continue
        sdk = _sdk_validate(Block, block, bp, "block")
        mark = len(out)
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or block_id == "":
                out.append(Problem(f"{bp}/block_id", "block_id must be a non-empty string", err))
            else:
                if len(block_id) > ID_MAX:
                    out.append(Problem(f"{bp}/block_id", f"{len(block_id)} characters (max {ID_MAX})", err))
                if block_id in block_ids:
                    out.append(
                        Problem(
                            f"{bp}/block_id",
                            f"duplicate block_id {block_id!r} (also block {block_ids[block_id]})",
                            err,
                        )
                    )
                block_ids[block_id] = i
        out += _block_body(block, bp)
        out[mark:mark] = _unless_explained(sdk, out[mark:], bp)
        out += _walk_mentions(block, bp)
    return out


def _block_body(block: dict, bp: str) -> list[Problem]:
    err = INVALID_BLOCKS
    out: list[Problem] = []
    btype = block.get("type")
    elements: list[tuple[str, Any]] = []
    if btype == "section":
        if block.get("text") is not None:
            out += _text_object(block["text"], f"{bp}/text", SECTION_TEXT_MAX, err, non_empty=True)
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list):
                out.append(Problem(f"{bp}/fields", "fields must be an array", err))
            else:
                if len(fields) > SECTION_FIELDS_MAX:
                    out.append(
                        Problem(f"{bp}/fields", f"{len(fields)} fields (max {SECTION_FIELDS_MAX})", err)
                    )
                for j, field in enumerate(fields):
                    out += _text_object(field, f"{bp}/fields/{j}", SECTION_FIELD_MAX, err, non_empty=True)
        if block.get("accessory") is not None:
            elements.append((f"{bp}/accessory", block["accessory"]))
    elif btype == "header":
        out += _text_object(
            block.get("text"),
            f"{bp}/text",
            HEADER_TEXT_MAX,
            err,
            plain_only=True,
            required=True,
            non_empty=True,
        )
    elif btype == "context":
        els = block.get("elements")
        if not isinstance(els, list) or not els:
            out.append(Problem(f"{bp}/elements", "context needs a non-empty elements array", err))
        else:
            if len(els) > CONTEXT_ELEMENTS_MAX:
                out.append(
                    Problem(f"{bp}/elements", f"{len(els)} elements (max {CONTEXT_ELEMENTS_MAX})", err)
                )
            for j, el in enumerate(els):
                if isinstance(el, dict) and el.get("type") in ("mrkdwn", "plain_text"):
                    out += _text_object(el, f"{bp}/elements/{j}", SECTION_TEXT_MAX, err, non_empty=True)
                elif isinstance(el, dict) and el.get("type") == "image":
                    pass
                else:
                    out.append(Problem(f"{bp}/elements/{j}", "context elements must be text or image", err))
    elif btype == "actions":
        els = block.get("elements")
        if not isinstance(els, list) or not els:
            out.append(Problem(f"{bp}/elements", "actions needs a non-empty elements array", err))
        else:
            if len(els) > ACTIONS_ELEMENTS_MAX:
                out.append(
                    Problem(f"{bp}/elements", f"{len(els)} elements (max {ACTIONS_ELEMENTS_MAX})", err)
                )
            elements += [(f"{bp}/elements/{j}", el) for j, el in enumerate(els)]
    elif btype == "input":
        out += _text_object(
            block.get("label"),
            f"{bp}/label",
            INPUT_LABEL_MAX,
            err,
            plain_only=True,
            required=True,
            non_empty=True,
        )
        if block.get("element") is None:
            out.append(Problem(f"{bp}/element", "input needs an element", err))
        else:
            elements.append((f"{bp}/element", block["element"]))
    action_ids: dict[str, str] = {}
    for ep, el in elements:
        out += _element(el, ep)
        aid = el.get("action_id") if isinstance(el, dict) else None
        if isinstance(aid, str):
            if aid in action_ids:
                out.append(
                    Problem(f"{ep}/action_id", f"duplicate action_id {aid!r} (also {action_ids[aid]})", err)
                )
            action_ids[aid] = ep
    return out


def _element(el: Any, ep: str) -> list[Problem]:
    err = INVALID_BLOCKS
    if not isinstance(el, dict):
        return [Problem(ep, f"element must be an object, got {type(el).__name__}", err)]
    sdk = _sdk_validate(BlockElement, el, ep, "element")
    out: list[Problem] = []
    aid = el.get("action_id")
    if aid is not None and (not isinstance(aid, str) or not aid or len(aid) > ID_MAX):
        out.append(Problem(f"{ep}/action_id", f"action_id must be 1..{ID_MAX} characters", err))
    etype = el.get("type")
    if etype == "button":
        out += _text_object(
            el.get("text"), f"{ep}/text", BUTTON_TEXT_MAX, err, plain_only=True, required=True, non_empty=True
        )
        value = el.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > BUTTON_VALUE_MAX):
            n = len(value) if isinstance(value, str) else type(value).__name__
            out.append(
                Problem(f"{ep}/value", f"button value is {n} characters (max {BUTTON_VALUE_MAX})", err)
            )
        url = el.get("url")
        if isinstance(url, str) and len(url) > BUTTON_URL_MAX:
            out.append(Problem(f"{ep}/url", f"{len(url)} characters (max {BUTTON_URL_MAX})", err))
    options = el.get("options")
    if isinstance(options, list):
        if len(options) > SELECT_OPTIONS_MAX:
            out.append(Problem(f"{ep}/options", f"{len(options)} options (max {SELECT_OPTIONS_MAX})", err))
        for k, opt in enumerate(options):
            op = f"{ep}/options/{k}"
            if not isinstance(opt, dict):
                out.append(Problem(op, "option must be an object", err))
                continue
            out += _text_object(
                opt.get("text"), f"{op}/text", OPTION_TEXT_MAX, err, required=True, non_empty=True
            )
            value = opt.get("value")
            if not isinstance(value, str) or len(value) > OPTION_VALUE_MAX:
                out.append(
                    Problem(
                        f"{op}/value", f"option value must be a string of at most {OPTION_VALUE_MAX}", err
                    )
                )
    return _unless_explained(sdk, out, ep) + out


def _unless_explained(sdk: list[Problem], explicit: list[Problem], path: str) -> list[Problem]:
    """slack_sdk's own findings, unless an explicit check already reported the same attribute (both
    would say "text is too long")."""
    for p in explicit:
        if p.error and (
            p.where == path or (p.where.startswith(path + "/") and p.where[len(path) + 1 :].count("/") <= 1)
        ):
            return []
    return sdk


def _sdk_validate(cls: Any, obj: dict, path: str, kind: str) -> list[Problem]:
    err = INVALID_BLOCKS
    try:
        parsed = cls.parse(obj)
    except Exception as e:  # malformed members make the constructors raise TypeError etc.
        return [Problem(path, f"slack_sdk cannot parse this {kind}: {type(e).__name__}: {e}", err)]
    if parsed is None:
        return [Problem(path, f"unknown {kind} type {obj.get('type')!r}", err)]
    try:
        parsed.validate_json()
    except Exception as e:
        return [Problem(path, f"slack_sdk: {e}", err)]
    return []


def _text_object(
    obj: Any,
    path: str,
    max_len: int,
    err: str,
    *,
    plain_only: bool = False,
    required: bool = False,
    non_empty: bool = False,
) -> list[Problem]:
    if obj is None:
        return [Problem(path, "text object is required", err)] if required else []
    if not isinstance(obj, dict):
        return [Problem(path, f"must be a text object, got {type(obj).__name__}", err)]
    ttype = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    out: list[Problem] = []
    if ttype not in allowed:
        out.append(Problem(f"{path}/type", f"text type must be {' or '.join(allowed)}, got {ttype!r}", err))
    text = obj.get("text")
    if not isinstance(text, str):
        out.append(Problem(f"{path}/text", "text must be a string", err))
        return out
    if len(text) > max_len:
        out.append(Problem(f"{path}/text", f"{len(text)} characters (max {max_len})", err))
    if non_empty and text == "":
        out.append(Problem(f"{path}/text", "must be more than 0 characters", err))
    return out


# --------------------------------------------------------------------------------------------- mentions


def _mentions(path: str, text: str) -> list[Problem]:
    return [
        Problem(path, f"un-escaped mass mention {m.group(0)!r} (escape & < > in untrusted text)", None)
        for m in MASS_MENTION.finditer(text)
    ]


def _walk_mentions(node: Any, path: str) -> list[Problem]:
    """Mass mentions in mrkdwn text objects and rich_text broadcast elements, anywhere in a block."""
    out: list[Problem] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            out += _mentions(f"{path}/text", node["text"])
        if node.get("type") == "broadcast":
            out.append(Problem(path, f"rich_text broadcast element ({node.get('range')!r})", None))
        for key, val in node.items():
            if isinstance(val, (dict, list)):
                out += _walk_mentions(val, f"{path}/{key}")
    elif isinstance(node, list):
        for i, val in enumerate(node):
            out += _walk_mentions(val, f"{path}/{i}")
    return out


def strings(obj: Any) -> Iterator[str]:
    """Every string inside a JSON value (block texts, button labels, values, ids)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings(value)
