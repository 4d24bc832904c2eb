"""Real SMTP servers on loopback addresses for the STARTTLS probe: aiosmtpd with or without STARTTLS,
and raw sockets that misbehave (silent, or talking without end).

Every server of one test run listens on the same port (the probe's port is one setting, as port 25
is one on the internet), each on its own random 127.x.y.z address, which the test zone gives the
MX host."""

from __future__ import annotations

import random
import socket
import ssl
import threading
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink


def loopback_addresses(count: int) -> list[str]:
    """`count` distinct random loopback addresses (all of 127/8 is loopback on Linux)."""
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    return [f"{base}.{10 + i}" for i in range(count)]


def free_tcp_port(addresses: list[str]) -> int:
    """A port free for TCP on every one of `addresses`."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            for address in addresses:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no TCP port free on all the test addresses")


class SmtpServers:
    """Servers by address: `smtp(address, tls)` (aiosmtpd; STARTTLS offered when `tls` is given),
    `silent(address)` (accepts, never answers), `chatty(address)` (a greeting that never ends),
    `scripted(address, greeting, replies)` (a fixed dialogue)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._controllers: list[Controller] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def smtp(self, address: str, tls: ssl.SSLContext | None) -> None:
        controller = Controller(
            Sink(), hostname=address, port=self.port, tls_context=tls, require_starttls=False
        )
        controller.start()
        self._controllers.append(controller)

    def silent(self, address: str) -> None:
        listener = socket.create_server((address, self.port))
        self._sockets.append(listener)  # the kernel completes connections; nothing is ever said

    def chatty(self, address: str) -> None:
        listener = socket.create_server((address, self.port))
        listener.settimeout(0.2)
        self._sockets.append(listener)

        def talk() -> None:
            while not self._stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    continue
                with connection:
                    try:
                        for _ in range(10_000):  # 90 KB of a greeting that never finishes
                            connection.sendall(b"220-still greeting\r\n")
                    except OSError:
                        pass

        thread = threading.Thread(target=talk, daemon=True)
        thread.start()
        self._threads.append(thread)

    def scripted(self, address: str, greeting: bytes, replies: list[bytes]) -> None:
        """Sends `greeting`, then one of `replies` after each line it reads (a server that breaks
        the dialogue at a chosen step: refuses STARTTLS, or answers it with bytes that are not TLS)."""
        listener = socket.create_server((address, self.port))
        listener.settimeout(0.2)
        self._sockets.append(listener)

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    continue
                with connection:
                    connection.settimeout(2)
                    try:
                        connection.sendall(greeting)
                        for reply in replies:
                            connection.recv(1024)
                            connection.sendall(reply)
                    except OSError:
                        pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self._threads.append(thread)

    def __enter__(self) -> SmtpServers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        for controller in self._controllers:
            controller.stop()
        for listener in self._sockets:
            listener.close()
        for thread in self._threads:
            thread.join(5)
