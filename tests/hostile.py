"""Real HTTP servers on loopback that misbehave on purpose, for the registry client's hostile-server tests.

Each connection gets a thread that reads one request and hands the raw socket to a handler, so a handler
can send anything: a gzip bomb, one byte a second, garbage instead of HTTP, a redirect to a metadata address.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[socket.socket, Request], None]


@dataclass
class Server:
    handler: Handler
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                self.handler(conn, request)
            except OSError:
                pass


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body)


def respond(conn: socket.socket, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
    lines = [f"HTTP/1.1 {status} X"]
    all_headers = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def dribble(conn: socket.socket, data: bytes, every: float = 0.2) -> None:
    """Send one byte at a time: every socket read succeeds, so per-read timeouts never fire."""
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(every)


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@cache
def gzip_bomb(size: int = 1 << 30) -> bytes:
    """gzip of gzip of ``size`` zero bytes: a few KB on the wire."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [inner.compress(zeros) for _ in range(size >> 20)]
    parts.append(inner.flush())
    return gzip.compress(b"".join(parts), 9)


def image_manifest(config: bytes) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": sha(config), "size": len(config)}}
    ).encode()


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Peak bytes allocated by Python in the block (tracemalloc), in the one-element list it yields."""
    result = [0]
    tracemalloc.start()
    try:
        yield result
    finally:
        result[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def run_with_deadline(fn: Callable[[], None], seconds: float) -> tuple[bool, float]:
    """Run fn in a thread; (finished within seconds, elapsed). A stuck client must fail the test, not hang it."""
    started = time.monotonic()
    worker = threading.Thread(target=fn, daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive(), time.monotonic() - started
