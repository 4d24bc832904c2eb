"""`/dmarc why` and the "Why did DMARC fail?" shortcut through the app's real endpoint, with a
message signed here and its key, SPF and DMARC records served by NSD."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.slack import ids as slack_ids
from bot.slack.mrkdwn import FIELD_ERROR_LIMIT
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.keys import rsa_public_numbers
from tests.messages.helpers import (
    key_record,
    message,
    prepend,
    rsa_key,
    sign,
    with_tags,
    worst_signature_value,
    zones,
)
from tests.slackapp import RunningApp
from tests.slackstub import SlackStandIn

PEM, PUB = rsa_key(2048)
SENDER_IP = "185.70.40.10"
RECORDS = {
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com")],
    "example.com": [("TXT", f"v=spf1 ip4:{SENDER_IP} -all")],
    "s1._domainkey.example.com": [("TXT", key_record(PUB))],
    # the largest key the caps allow, with the longest exponent: what an attacker would publish
    "max._domainkey.example.com": [("TXT", key_record(rsa_public_numbers(8192, 2**32 - 1)))],
    # over the caps: dkimpy's pure-Python pow() on it would hold the GIL for many seconds
    "huge._domainkey.example.com": [("TXT", key_record(rsa_public_numbers(16384, 2**16000 + 1)))],
}


def signed_message(body: str = "Hello\r\n") -> bytes:
    raw = sign(message(body=body), "example.com", "s1", PEM)
    return prepend(
        raw,
        (
            "Received",
            f"from out.example.com (out.example.com [{SENDER_IP}]) "
            "by mx.receiver.test; Tue, 1 Oct 2024 10:00:00 +0000",
        ),
        ("Return-Path", "<bounce@example.com>"),
    )


@pytest.fixture
def app(nsd: NsdServer, make_app: AppFactory) -> RunningApp:
    nsd.set_zones(zones(RECORDS))
    return make_app(nsd, dns_timeout=0.5)


def headers_of(raw: bytes) -> str:
    return raw.decode().split("\r\n\r\n", 1)[0]


@pytest.mark.slow
def test_why_opens_the_paste_modal(app: RunningApp, slack: SlackStandIn) -> None:
    status, body = app.sim.slash_command("why", channel_id="C9")
    assert status == 200 and body in ("", "null")  # acknowledged with nothing to say
    (call,) = slack.wait_for("views.open")
    view = call.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == slack_ids.CALLBACK_WHY_MODAL
    assert json.loads(view["private_metadata"]) == {"channel": "C9"}
    element = view["blocks"][0]["element"]
    assert element["max_length"] == 3000
    assert "3,000 characters" in view["blocks"][0]["hint"]["text"]
    assert "shortcut" in view["blocks"][0]["hint"]["text"]
    slack.assert_no_violations()


@pytest.mark.slow
def test_pasted_headers_get_a_verdict_in_the_channel(app: RunningApp, slack: SlackStandIn) -> None:
    status, _ = app.sim.view_submission(
        slack_ids.CALLBACK_WHY_MODAL,
        {slack_ids.BLOCK_WHY_HEADERS: {slack_ids.ACTION_WHY_HEADERS: headers_of(signed_message())}},
        private_metadata=json.dumps({"channel": "C9"}),
    )
    assert status == 200
    (post,) = slack.wait_for_posts(1)
    assert post.params["channel"] == "C9"
    assert post.text is not None and post.text.startswith("DMARC pass for mail from example.com")
    rendered = json.dumps(post.blocks)
    assert "d=`example.com` s=`s1`: *pass*" in rendered
    assert "headers only: DKIM body hashes were not checked" in rendered
    slack.assert_no_violations()


@pytest.mark.slow
def test_text_that_is_not_a_message_is_answered_on_the_field(
    app: RunningApp, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    status, body = app.sim.view_submission(
        slack_ids.CALLBACK_WHY_MODAL,
        {slack_ids.BLOCK_WHY_HEADERS: {slack_ids.ACTION_WHY_HEADERS: "hello, what is DMARC?"}},
        private_metadata=json.dumps({"channel": "C9"}),
    )
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    error = answer["errors"][slack_ids.BLOCK_WHY_HEADERS]
    assert len(error) <= FIELD_ERROR_LIMIT
    # said whole, not cut mid-word ("Give the raw mess"): what would work is the point
    assert error.endswith("or its headers.") and "Give the raw message" in error
    wait_for_log(caplog, "the pasted text is not a message")  # the listener's last act
    assert slack.posts() == []


@pytest.mark.slow
def test_shortcut_on_pasted_headers_answers_in_the_thread(app: RunningApp, slack: SlackStandIn) -> None:
    # Slack stores pasted text escaped, with addresses turned into mailto links
    pasted = (
        headers_of(signed_message())
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("alice@example.com", "<mailto:alice@example.com|alice@example.com>")
    )
    status, _ = app.sim.message_shortcut(
        slack_ids.CALLBACK_WHY_SHORTCUT,
        {"text": f"```{pasted}```", "ts": "1700000000.000200"},
        channel_id="C7",
    )
    assert status == 200
    (post,) = slack.wait_for_posts(1)
    assert post.params["channel"] == "C7"
    assert post.params["thread_ts"] == "1700000000.000200"
    assert post.text is not None and post.text.startswith("DMARC pass")
    slack.assert_no_violations()


@pytest.mark.slow
def test_shortcut_on_an_attached_eml_downloads_it_with_the_bot_token(
    app: RunningApp, slack: SlackStandIn
) -> None:
    raw = signed_message(body="Hello\r\n")
    # the body changed after signing: only the whole .eml can show it
    tampered = raw.replace(b"Hello\r\n", b"Hello\r\n--\r\nSent via the list\r\n")
    file = slack.add_file(
        "msg.eml", tampered, filename="failed.eml", mimetype="message/rfc822", filetype="eml"
    )
    status, _ = app.sim.message_shortcut(
        slack_ids.CALLBACK_WHY_SHORTCUT, {"text": "why did this fail?", "files": [file]}, channel_id="C7"
    )
    assert status == 200
    (post,) = slack.wait_for_posts(1)
    downloads = slack.calls("files.download")
    assert downloads and downloads[0].params["authorized"]
    rendered = json.dumps(post.blocks)
    assert "cause.dkim_body_modified" in rendered
    assert post.text is not None and post.text.startswith("DMARC pass")  # SPF still aligned


@pytest.mark.slow
def test_shortcut_on_a_message_with_nothing_to_read_says_what_to_do(
    app: RunningApp, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app.sim.message_shortcut(slack_ids.CALLBACK_WHY_SHORTCUT, {"text": "lunch?"}, channel_id="C7")
    (answer,) = slack.wait_for("response_url")
    assert "I can't read a message there" in answer.params["text"]
    assert answer.params.get("response_type") == "ephemeral"
    wait_for_log(caplog, "explaining a message's DMARC result: finished")
    assert slack.calls("chat.postMessage") == []


@pytest.mark.parametrize(
    ("selector", "signatures"),
    [
        ("max", 5),  # as many as are verified, each naming the largest allowed key, with the longest b=
        ("huge", 1),  # a key over the caps, refused before dkimpy computes anything
    ],
)
def test_help_is_acknowledged_at_once_while_a_worst_case_why_runs(
    app: RunningApp, slack: SlackStandIn, selector: str, signatures: int
) -> None:
    raw = message()
    for _ in range(signatures):
        raw = with_tags(sign(raw, "example.com", selector, PEM), b=worst_signature_value())
    pasted = headers_of(raw).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    whys = [
        threading.Thread(
            target=app.sim.message_shortcut,
            args=(slack_ids.CALLBACK_WHY_SHORTCUT, {"text": f"```{pasted}```", "ts": f"1700000000.00{i}"}),
            kwargs={"channel_id": "C7"},
        )
        for i in range(3)
    ]
    for thread in whys:
        thread.start()
    acks = []
    for _ in range(5):
        started = time.perf_counter()
        status, body = app.sim.slash_command("help", channel_id="C8")
        acks.append(time.perf_counter() - started)
        assert status == 200 and "/dmarc check" in body
    for thread in whys:
        thread.join()
    posts = slack.wait_for_posts(3)  # the whys did run, each with every signature
    for post in posts:
        rendered = json.dumps(post.blocks)
        assert rendered.count(f"s=`{selector}`") == signatures, rendered
    print(f"/dmarc help acks during the worst-case why: {', '.join(f'{a * 1000:.0f} ms' for a in acks)}")
    assert max(acks) < 1, acks


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A web server that is not Slack, recording the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"From: a@b.example\r\n\r\nhi\r\n")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/steal", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_shortcut_takes_the_file_from_files_info_not_the_payload_url(
    app: RunningApp, slack: SlackStandIn, elsewhere: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = elsewhere
    file = slack.add_file(
        "real.eml", signed_message(), filename="real.eml", mimetype="message/rfc822", filetype="eml"
    )
    forged = {**file, "url_private": url, "url_private_download": url}
    status, _ = app.sim.message_shortcut(
        slack_ids.CALLBACK_WHY_SHORTCUT, {"text": "why?", "files": [forged]}, channel_id="C7"
    )
    assert status == 200
    (post,) = slack.wait_for_posts(1)  # the verdict of the real file: the work is done
    assert post.text is not None and post.text.startswith("DMARC pass for mail from example.com")
    assert [c.params["file"] for c in slack.calls("files.info")] == [file["id"]]
    assert seen == []  # the bot token never went to the address in the payload
