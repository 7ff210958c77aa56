"""Hostile HTTP clients for the operator's endpoints, on loopback only: slow and oversized request heads."""

from __future__ import annotations

import socket
import threading
import time


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` to 127.0.0.1:`port` and read until the server closes; what a refusing server cut off is fine."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return received


class SlowClients:
    """`count` connections that send a request line and header lines and never the blank line that ends them.

    Even clients send `big_line` bytes per header line (up to `big_lines` of them, then a byte per round): the
    memory attack. Odd clients send one short line per round: the slowloris. A connection the server closes is
    opened again, so `count` are always trying. One thread, `interval` seconds between rounds.
    """

    def __init__(
        self, port: int, count: int = 100, big_line: int = 60 * 1024, big_lines: int = 16, interval: float = 0.2
    ) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.big_line, self.big_lines = big_line, big_lines
        self.connects = 0
        self.sent = 0
        self._socks: list[socket.socket | None] = [None] * count
        self._lines = [0] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self._socks:
            if sock is not None:
                sock.close()

    @property
    def open(self) -> int:
        return sum(sock is not None for sock in self._socks)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i in range(self.count):
                try:
                    self._step(i)
                except OSError:
                    sock, self._socks[i] = self._socks[i], None
                    if sock is not None:
                        sock.close()
            self._stop.wait(self.interval)

    def _step(self, i: int) -> None:
        sock = self._socks[i]
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
            sock.settimeout(0.05)  # a server that stops reading must not stall the other clients
            self._socks[i], self._lines[i] = sock, 0
            self.connects += 1
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: operator\r\n")
            return
        if i % 2 == 0 and self._lines[i] < self.big_lines:
            data = b"X-Big-%d: " % self._lines[i] + b"a" * self.big_line + b"\r\n"
        elif i % 2 == 0:
            data = b"a"  # the last big line never ends
        else:
            data = b"X-Slow-%d: %d\r\n" % (self._lines[i], time.monotonic_ns())
        self.sent += sock.send(data)
        self._lines[i] += 1
