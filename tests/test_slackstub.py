"""The Slack stand-ins themselves, driven by the real slack_sdk WebClient and a real Bolt app."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.slackstub import (
    SIGNING_SECRET,
    SlackClientSim,
    SlackStandIn,
    check_message,
    check_view,
    free_port,
    sign,
)


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Go", value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


def modal(**extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "cb",
        "title": {"type": "plain_text", "text": "DMARC"},
        "blocks": [section("hello")],
        **extra,
    }


@pytest.fixture
def stand_in() -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        yield s


@pytest.fixture
def client(stand_in: SlackStandIn) -> WebClient:
    return WebClient(base_url=stand_in.api_url, token="xoxb-test")


# ------------------------------------------------------------------------------------------- Web API


def test_post_message_is_recorded_with_its_blocks(stand_in: SlackStandIn, client: WebClient) -> None:
    blocks = [section("*example.com*: DMARC `p=reject`"), {"type": "divider"}]
    first = client.chat_postMessage(channel="C1", text="example.com: DMARC p=reject", blocks=blocks)
    second = client.chat_postMessage(channel="C1", text="again")

    assert first["ok"] and first["channel"] == "C1" and first["message"]["blocks"] == blocks
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    call = stand_in.calls("chat.postMessage")[0]
    assert call.params["blocks"] == blocks
    assert call.params["channel"] == "C1"
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert [c.text for c in stand_in.posts()] == ["example.com: DMARC p=reject", "again"]
    assert [m["ts"] for m in stand_in.messages("C1")] == [first["ts"], second["ts"]]
    stand_in.assert_no_violations()


def test_update_and_ephemeral_and_auth_test(stand_in: SlackStandIn, client: WebClient) -> None:
    auth = client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"], auth["team"]) == ("UBOT", "BBOT", "T1", "Test")
    posted = client.chat_postMessage(channel="C1", text="checking…")
    client.chat_update(channel="C1", ts=posted["ts"], text="done", blocks=[section("done")])
    eph = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert eph["message_ts"]
    assert [c.method for c in stand_in.posts()] == ["chat.postMessage", "chat.update", "chat.postEphemeral"]
    assert stand_in.messages("C1")[0]["text"] == "done"


def test_blocks_sent_form_encoded_are_decoded(stand_in: SlackStandIn, client: WebClient) -> None:
    blocks = [section("form")]
    client.api_call(
        "chat.postMessage", params={"channel": "C1", "text": "form", "blocks": json.dumps(blocks)}
    )
    call = stand_in.last("chat.postMessage")
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.params["blocks"] == blocks


def test_unknown_method_answers_ok_and_is_recorded(stand_in: SlackStandIn, client: WebClient) -> None:
    assert client.api_call("reactions.add", json={"channel": "C1", "name": "eyes", "timestamp": "1.2"})["ok"]
    assert stand_in.last("reactions.add").params["name"] == "eyes"


def test_missing_token_is_not_authed(stand_in: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=stand_in.api_url).auth_test()
    assert err.value.response["error"] == "not_authed"


@pytest.mark.slow
def test_rate_limit_then_success_with_retry_handler(stand_in: SlackStandIn) -> None:
    client = WebClient(
        base_url=stand_in.api_url,
        token="xoxb-test",
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    stand_in.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    resp = client.chat_postMessage(channel="C1", text="hi")
    elapsed = time.monotonic() - started

    assert resp["ok"]
    assert elapsed >= 1.0  # slack_sdk sleeps Retry-After plus a random 0..1 s
    calls = stand_in.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert len(stand_in.posts()) == 1 and len(stand_in.posts(include_failed=True)) == 2


def test_rate_limit_without_handler_raises(stand_in: SlackStandIn, client: WebClient) -> None:
    stand_in.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]  # times=1: the next one passes


def test_server_error_and_api_error(stand_in: SlackStandIn, client: WebClient) -> None:
    stand_in.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 500

    stand_in.fail_next("conversations.info", error="channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.conversations_info(channel="C9")
        assert err.value.response.status_code == 200
        assert err.value.response["error"] == "channel_not_found"
    assert client.conversations_info(channel="C9")["ok"]


def test_channels_membership_and_join(stand_in: SlackStandIn, client: WebClient) -> None:
    stand_in.set_channel("C2", is_member=False, name="dmarc-alerts")
    info = client.conversations_info(channel="C2")["channel"]
    assert (info["id"], info["name"], info["is_member"]) == ("C2", "dmarc-alerts", False)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C2", text="hi")
    assert err.value.response["error"] == "not_in_channel"
    client.conversations_join(channel="C2")
    assert client.conversations_info(channel="C2")["channel"]["is_member"] is True
    assert client.chat_postMessage(channel="C2", text="hi")["ok"]

    stand_in.set_channel("C3", exists=False)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C3", text="hi")
    assert err.value.response["error"] == "channel_not_found"
    stand_in.assert_no_violations()  # refusals of the API are not Block Kit violations


def test_users_team_and_oauth(stand_in: SlackStandIn, client: WebClient) -> None:
    stand_in.set_user("U7", team_id="T2", is_admin=True)
    user = client.users_info(user="U7")["user"]
    assert (user["team_id"], user["is_admin"]) == ("T2", True)
    assert client.users_info(user="U1")["user"]["team_id"] == "T1"
    assert client.team_info()["team"]["id"] == "T1"

    stand_in.set_oauth(team={"id": "T2", "name": "Other"}, access_token="xoxb-t2-token")
    install = WebClient(base_url=stand_in.api_url).oauth_v2_access(
        client_id="111.222", client_secret="secret", code="the-code", redirect_uri="https://example.test/cb"
    )
    assert install["access_token"] == "xoxb-t2-token" and install["token_type"] == "bot"
    assert install["team"] == {"id": "T2", "name": "Other"}
    assert install["bot_user_id"] == "UBOT" and install["authed_user"]["id"] == "U1" and install["scope"]
    assert stand_in.last("oauth.v2.access").headers["Authorization"].startswith("Basic ")
    assert WebClient(base_url=stand_in.api_url, token="xoxb-t2-token").auth_test()["team_id"] == "T2"


# ---------------------------------------------------------------------------------------- Block Kit


def test_too_many_blocks_is_refused(stand_in: SlackStandIn, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x", blocks=[section(f"row {i}") for i in range(51)])
    assert err.value.response["error"] == "invalid_blocks"
    assert any("51 blocks" in v for v in stand_in.violations)
    assert stand_in.posts() == []
    with pytest.raises(AssertionError, match="51 blocks"):
        stand_in.assert_no_violations()


def test_long_section_is_refused(stand_in: SlackStandIn, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x", blocks=[section("a" * 3001)])
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["response_metadata"]["messages"]
    assert stand_in.violations and "3000" in stand_in.violations[0]
    client.chat_postMessage(channel="C1", text="x", blocks=[section("a" * 3000)])
    assert len(stand_in.violations) == 1


def test_mass_mentions_are_flagged(stand_in: SlackStandIn, client: WebClient) -> None:
    # Slack would deliver (and ping everyone): the stand-in answers ok but records the violation.
    resp = client.chat_postMessage(
        channel="C1", text="TXT: v=spf1 <!channel>", blocks=[section("<!here|here>")]
    )
    assert resp["ok"]
    assert len(stand_in.violations) == 2
    assert all("mass mention" in v for v in stand_in.violations)
    assert check_message({"text": "v=spf1 &lt;!channel&gt;"}) == []
    assert check_message({"text": "<!everyone>", "mrkdwn": False}) == []


def test_missing_fallback_text_is_a_violation(stand_in: SlackStandIn, client: WebClient) -> None:
    # slack_sdk itself warns (a UserWarning, so an error under this project's filterwarnings); Slack
    # accepts the message, the stand-in too, but records the violation.
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        assert client.chat_postMessage(channel="C1", blocks=[section("hi")])["ok"]
    assert stand_in.violations == [
        "chat.postMessage: /text: blocks without a top-level text fallback (notifications, screen readers)"
    ]


def test_check_message_limits() -> None:
    ok = {"text": "t", "blocks": [section("s", accessory=button("a"))]}
    assert check_message(ok) == []
    bad = {
        "text": "t",
        "blocks": [
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]},
            {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
            section("s", accessory=button("b", text="x" * 76)),
            {"type": "actions", "elements": [button("dup"), button("dup", value="v" * 2001)]},
            {"type": "actions", "block_id": "same", "elements": [button("x" * 256)]},
            {"type": "context", "block_id": "same", "elements": [{"type": "mrkdwn", "text": "c"}] * 11},
            {"type": "actions", "elements": [button(f"a{i}") for i in range(26)]},
            {"type": "no_such_block"},
            section(""),
        ],
    }
    problems = "\n".join(check_message(bad))
    for expected in [
        "/blocks/0/fields/0/text: 2001 characters (max 2000)",
        "/blocks/1",  # header text
        "/blocks/2/accessory/text/text: 76 characters (max 75)",
        "duplicate action_id 'dup'",
        "/blocks/3/elements/1/value: button value is 2001 characters",
        "/blocks/4/elements/0/action_id",
        "duplicate block_id 'same'",
        "/blocks/5",  # 11 context elements
        "/blocks/6",  # 26 actions elements
        "unknown block type 'no_such_block'",
        "/blocks/8/text/text: must be more than 0 characters",
    ]:
        assert expected in problems, expected
    assert check_message({"channel": "C1"}) == ["/: message has no text, blocks or attachments"]
    assert any("40000" in p for p in check_message({"text": "x" * 40001}))
    assert check_message({"delete_original": True}) == []


def test_check_view_limits() -> None:
    assert check_view(modal()) == []
    assert any("title" in p for p in check_view(modal(title={"type": "plain_text", "text": "t" * 25})))
    assert any("3000" in p for p in check_view(modal(private_metadata="m" * 3001)))
    assert any("101 blocks" in p for p in check_view(modal(blocks=[section("b")] * 101)))
    assert check_view({"type": "home", "blocks": [section("b")] * 100}) == []
    inp = {
        "type": "input",
        "label": {"type": "plain_text", "text": "Domain"},
        "element": {"type": "plain_text_input", "action_id": "domain"},
    }
    assert any("submit" in p for p in check_view(modal(blocks=[inp])))
    assert check_view(modal(blocks=[inp], submit={"type": "plain_text", "text": "Check"})) == []
    assert any("3001 characters" in p for p in check_view(modal(blocks=[section("x" * 3001)])))


def test_views_are_validated_and_answered(stand_in: SlackStandIn, client: WebClient) -> None:
    sim = SlackClientSim("http://127.0.0.1:9")
    opened = client.views_open(trigger_id=sim._trigger_id(None), view=modal())["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["callback_id"] == "cb"
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(private_metadata="p"))
    assert updated["view"]["id"] == opened["id"] and updated["view"]["private_metadata"] == "p"
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash="stale", view=modal())
    assert err.value.response["error"] == "hash_conflict"
    client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("home")]})
    stand_in.assert_no_violations()

    with pytest.raises(SlackApiError) as err:
        client.views_open(
            trigger_id=sim._trigger_id(None), view=modal(title={"type": "plain_text", "text": "t" * 25})
        )
    assert err.value.response["error"] == "invalid_arguments"
    assert any("title" in m for m in err.value.response["response_metadata"]["messages"])
    assert len(stand_in.violations) == 1


def test_expired_trigger_id(stand_in: SlackStandIn, client: WebClient) -> None:
    stale = f"{int((time.time() - 4) * 1000)}.1.abcdef"
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=stale, view=modal())
    assert err.value.response["error"] == "expired_trigger_id"
    assert "trigger_id used" in stand_in.violations[0]


# ------------------------------------------------------------------------------------------- files


def test_files_upload_v2(stand_in: SlackStandIn, client: WebClient) -> None:
    data = b"<feedback><report_metadata/></feedback>"
    resp = client.files_upload_v2(
        channel="C1", filename="report.xml", content=data, title="Report", initial_comment="the report"
    )
    assert resp["ok"] and resp["file"]["id"].startswith("F")
    assert [c.method for c in stand_in.calls()] == [
        "files.getUploadURLExternal",
        "files.upload_url",
        "files.completeUploadExternal",
    ]
    (upload,) = stand_in.uploads()
    assert (upload["data"], upload["filename"], upload["title"], upload["channel_id"]) == (
        data,
        "report.xml",
        "Report",
        "C1",
    )
    info = client.files_info(file=resp["file"]["id"])["file"]
    assert info["size"] == len(data)
    stand_in.assert_no_violations()


def test_legacy_files_upload_is_retired(stand_in: SlackStandIn, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("files.upload", data={"channels": "C1", "content": "x", "filename": "x.txt"})
    assert err.value.response["error"] == "method_deprecated"
    assert stand_in.last("files.upload").params["filename"] == "x.txt"  # multipart body parsed


def test_file_download_requires_bearer_token(stand_in: SlackStandIn, client: WebClient) -> None:
    data = b"\x1f\x8b gzip bytes"
    file_obj = stand_in.add_file(
        "agg", data, filename="google.com!example.com.xml.gz", mimetype="application/gzip"
    )
    assert file_obj["url_private_download"] == stand_in.file_url("agg")
    assert client.files_info(file=file_obj["id"])["file"]["name"] == "google.com!example.com.xml.gz"

    req = urllib.request.Request(
        file_obj["url_private_download"], headers={"Authorization": "Bearer xoxb-test"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.read() == data
        assert resp.headers["Content-Type"] == "application/gzip"

    # Without the token Slack redirects to its sign-in page: an HTML 200, not the file.
    with urllib.request.urlopen(file_obj["url_private_download"], timeout=5) as resp:
        body = resp.read()
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
        assert body != data
    assert [c.params["authorized"] for c in stand_in.calls("files.download")] == [True, False]


def test_files_info_returns_the_shares_given_to_add_file(stand_in: SlackStandIn, client: WebClient) -> None:
    shares = {
        "public": {"C1": [{"ts": "1700000000.000100"}]},
        "private": {"G1": [{"ts": "1700000000.000300", "thread_ts": "1700000000.000200"}]},
    }
    file_obj = stand_in.add_file("shared", b"x", filename="r.xml", shares=shares)
    assert file_obj["shares"] == shares
    file_obj["shares"]["public"]["C1"].clear()  # the caller's copy, not the stored file object
    shares["public"]["C1"].append({"ts": "1"})  # nor is the argument kept by reference
    info = client.files_info(file=file_obj["id"])["file"]
    assert info["shares"] == {
        "public": {"C1": [{"ts": "1700000000.000100"}]},
        "private": {"G1": [{"ts": "1700000000.000300", "thread_ts": "1700000000.000200"}]},
    }
    unshared = stand_in.add_file("plain", b"y")
    assert "shares" not in client.files_info(file=unshared["id"])["file"]

    for bad in (
        {"dm": {"D1": [{"ts": "1.2"}]}},
        {"public": {"C1": {"ts": "1.2"}}},
        {"public": {"C1": [{"thread_ts": "1.2"}]}},
        {"public": {"C1": [{"ts": 1.2}]}},
    ):
        with pytest.raises(ValueError, match="shares"):
            stand_in.add_file("bad", b"z", shares=bad)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- response_url


def test_response_url_posts(stand_in: SlackStandIn) -> None:
    url = stand_in.response_url("cmd")
    hook = WebhookClient(url)
    assert hook.send(text="working…", response_type="ephemeral").body == "ok"
    bad = hook.send(text="x", blocks=[section("x" * 3001)])
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
    for _ in range(3):
        assert hook.send(text="more").status_code == 200
    sixth = hook.send(text="too many")
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    assert [c.params["text"] for c in stand_in.posts()] == ["working…", "more", "more", "more"]
    assert len(stand_in.violations) == 2


def test_wait_for_blocks_until_calls_arrive(stand_in: SlackStandIn, client: WebClient) -> None:
    def later() -> None:
        time.sleep(0.2)
        client.chat_postMessage(channel="C1", text="one")
        client.chat_postMessage(channel="C1", text="two")

    thread = threading.Thread(target=later)
    thread.start()
    calls = stand_in.wait_for("chat.postMessage", count=2, timeout=5)
    thread.join()
    assert [c.text for c in calls] == ["one", "two"]
    with pytest.raises(AssertionError, match=r"waited 0.1s for 1 chat.update"):
        stand_in.wait_for("chat.update", timeout=0.1)
    stand_in.reset()
    assert stand_in.calls() == []


# ------------------------------------------------------------------------------------------ signing


def test_sign_matches_slack_sdk_verifier() -> None:
    body = b"token=x&team_id=T1&command=%2Fdmarc&text=example.com"
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(body, sign(body))
    assert not verifier.is_valid_request(body, sign(body, secret="wrong"))
    assert not verifier.is_valid_request(body, sign(body, timestamp=int(time.time()) - 600))
    assert not verifier.is_valid_request(body + b"x", sign(body))


class _Recorder(BaseHTTPRequestHandler):
    """Records what the simulator sends, answers 200."""

    seen: list[tuple[dict[str, Any], bytes]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_simulator_requests_verify_with_slack_sdk() -> None:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        sim = SlackClientSim(f"http://127.0.0.1:{server.server_address[1]}")
        assert sim.slash_command("example.com") == (200, "")
        sim.block_action("recheck", "example.com")
        sim.event(SlackClientSim.app_mention_event("check example.com"), retry_num=1)
        sim.slash_command("x", forge_signature=True)
        sim.slash_command("x", timestamp_offset=-600)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    verifier = SignatureVerifier(SIGNING_SECRET)
    results = [verifier.is_valid_request(body, headers) for headers, body in _Recorder.seen]
    assert results == [True, True, True, False, False]
    headers, body = _Recorder.seen[2]
    assert headers["Content-Type"] == "application/json" and headers["X-Slack-Retry-Num"] == "1"
    assert json.loads(body)["type"] == "event_callback"


# ------------------------------------------------------------------------ the payloads, through Bolt


class _BoltServer:
    """A real Bolt App behind a loopback HTTP server (the way the app runs in HTTP mode)."""

    def __init__(self, app: App):
        bolt = app

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers: dict[str, str | Sequence[str]] = {k.lower(): [v] for k, v in self.headers.items()}
                resp = bolt.dispatch(BoltRequest(body=body, headers=headers))
                payload = resp.body.encode()
                self.send_response(resp.status)
                for k, values in resp.headers.items():
                    if k.lower() != "content-length":
                        for v in values:
                            self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _BoltServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_bolt_accepts_the_simulated_payloads(stand_in: SlackStandIn) -> None:
    app = App(signing_secret=SIGNING_SECRET, client=WebClient(base_url=stand_in.api_url, token="xoxb-test"))
    seen: dict[str, Any] = {}

    @app.command("/dmarc")
    def command(ack: Any, command: dict[str, Any], respond: Any, context: Any) -> None:
        ack()
        seen["command"] = (command["text"], context.team_id, context.user_id, context.channel_id)
        respond(text=f"checked {command['text']}")

    @app.action("recheck")
    def action(
        ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: WebClient
    ) -> None:
        ack()
        seen["action"] = (action["value"], body["channel"]["id"], body["message"]["ts"])
        client.views_open(trigger_id=body["trigger_id"], view=modal())
        respond(text="re-checked", replace_original=True)

    @app.view("add_domain")
    def view(ack: Any, view: dict[str, Any], body: dict[str, Any]) -> None:
        seen["view"] = (
            view["state"]["values"]["d"]["domain"]["value"],
            view["private_metadata"],
            body["user"]["id"],
        )
        ack(response_action="errors", errors={"d": "not a domain"})

    @app.shortcut("check_headers")
    def shortcut(ack: Any, shortcut: dict[str, Any], respond: Any) -> None:
        ack()
        seen["shortcut"] = shortcut["message"]["text"]
        respond(text="headers checked")

    @app.event("app_mention")
    def mention(event: dict[str, Any], say: Any) -> None:
        seen["mention"] = event["text"]
        say(text="on it")

    with _BoltServer(app) as bolt:
        sim = SlackClientSim(bolt.url, stand_in=stand_in)
        assert sim.slash_command("example.com") == (200, "")
        stand_in.wait_for("response_url")
        assert seen["command"] == ("example.com", "T1", "U1", "C1")

        assert sim.block_action("recheck", "example.com", message_ts="1700000000.000100")[0] == 200
        stand_in.wait_for("views.open")
        stand_in.wait_for("response_url", count=2)
        assert seen["action"] == ("example.com", "C1", "1700000000.000100")

        status, body = sim.view_submission("add_domain", {"d": {"domain": "exa mple"}}, private_metadata="C1")
        assert status == 200 and json.loads(body) == {
            "response_action": "errors",
            "errors": {"d": "not a domain"},
        }
        assert seen["view"] == ("exa mple", "C1", "U1")

        assert sim.message_shortcut("check_headers", {"text": "Received: from ...", "ts": "1.2"})[0] == 200
        stand_in.wait_for("response_url", count=3)
        assert seen["shortcut"] == "Received: from ..."

        assert sim.event(SlackClientSim.app_mention_event("check example.com"))[0] == 200
        stand_in.wait_for("chat.postMessage")
        assert seen["mention"] == "<@UBOT> check example.com"

        assert sim.url_verification("chal-123") == (200, '{"challenge": "chal-123"}')
        assert sim.slash_command("example.com", forge_signature=True)[0] == 401
        assert sim.slash_command("example.com", timestamp_offset=-600)[0] == 401

    assert [c.params["text"] for c in stand_in.posts()] == [
        "checked example.com",
        "re-checked",
        "headers checked",
        "on it",
    ]
    stand_in.assert_no_violations()


def test_response_url_default_without_stand_in_never_leaves_loopback() -> None:
    sim = SlackClientSim("http://127.0.0.1:9")
    with pytest.raises(urllib.error.URLError):
        sim.slash_command("x")
    assert sim.last_response_url is not None and sim.last_response_url.startswith("http://127.0.0.1:")
