"""The HTTP endpoint against bodies no Slack request has: refused by size before the signature check,
and never read into memory.

The app runs in this process, so its memory is this process's: the peak (VmHWM) is reset through
/proc/self/clear_refs before each request and read back after.
"""

from __future__ import annotations

import re
import select
import socket
from pathlib import Path

from bot.limits import MAX_REQUEST_BODY_BYTES
from tests.conftest import AppFactory
from tests.slackstub import SlackStandIn

MiB = 1024 * 1024


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set size


def _peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


def _post_unsigned(url_port: int, headers: str, body_bytes: int) -> tuple[bytes, int]:
    """POST `body_bytes` of junk with no signature, a 1 MiB chunk at a time, reading the answer as
    soon as the server sends one. Returns the answer and how many body bytes went out before it."""
    chunk = b"x" * MiB
    sent = 0
    with socket.create_connection(("127.0.0.1", url_port), timeout=30) as conn:
        conn.sendall(f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
        while sent < body_bytes:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break
            try:
                conn.sendall(chunk[: body_bytes - sent])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += min(len(chunk), body_bytes - sent)
        answer = b""
        try:
            while part := conn.recv(65536):
                answer += part
        except ConnectionResetError:
            pass
    return answer, sent


def test_a_300_mb_post_is_refused_413_unread(make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app("127.0.0.1:9")  # no DNS is asked
    port = int(app.server.server_address[1])
    _peak_rss_reset()
    before = _peak_rss()
    size = 300 * MiB
    answer, sent = _post_unsigned(
        port, f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\n", size
    )
    grown = _peak_rss() - before
    assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"at most {MAX_REQUEST_BODY_BYTES:,}".encode() in answer
    assert sent < size  # answered before the body was sent, so it was never read
    assert grown < 20 * MiB, f"peak memory grew by {grown / MiB:.0f} MB"
    assert slack.calls() == []


def test_a_body_longer_than_its_content_length_is_read_only_to_it(make_app: AppFactory) -> None:
    app = make_app("127.0.0.1:9")
    port = int(app.server.server_address[1])
    _peak_rss_reset()
    before = _peak_rss()
    # Says 10 bytes, sends 100 MB: at most the 10 are read, then the unsigned request is refused.
    answer, _ = _post_unsigned(port, "Content-Length: 10\r\n", 100 * MiB)
    grown = _peak_rss() - before
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"401", answer[:200]
    assert grown < 20 * MiB, f"peak memory grew by {grown / MiB:.0f} MB"


def test_a_chunked_body_is_refused_unread(make_app: AppFactory) -> None:
    app = make_app("127.0.0.1:9")
    port = int(app.server.server_address[1])
    answer, _ = _post_unsigned(port, "Transfer-Encoding: chunked\r\n", 50 * MiB)
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"411", answer[:200]
    assert b"Content-Length is required" in answer


def test_a_signed_request_just_under_the_cap_is_still_served(make_app: AppFactory) -> None:
    app = make_app("127.0.0.1:9")
    # A slash command whose text pads the body to just under the cap is still acknowledged.
    status, _ = app.sim.slash_command("help " + "x" * (MAX_REQUEST_BODY_BYTES - 2000))
    assert status == 200
