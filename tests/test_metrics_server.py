"""The /metrics server against hostile clients on loopback: header floods, slow clients, too many connections,
scrape floods, a missing or wrong token (issue 16, case 1). Real sockets, a render function as the seam."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprelease.controller.metrics_auth import TokenError, TokenFile
from apprelease.controller.metrics_http import MAX_HEADER_LINES, Refusal, Request, parse_head
from apprelease.controller.metrics_server import MetricsServer, ServerLimits

PAGE = b"# HELP up 1\nup 1\n"


class Page:
    """A render function that counts its calls and the threads they ran on."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self) -> bytes:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return PAGE


def start(page: Page, limits: ServerLimits | None = None, token: TokenFile | None = None) -> MetricsServer:
    server = MetricsServer(page, limits=limits, token=token)
    server.start(0, "127.0.0.1")
    return server


@pytest.fixture
def page() -> Page:
    return Page()


@pytest.fixture
def server(page: Page) -> Iterator[MetricsServer]:
    s = start(page, ServerLimits(max_connections=8, read_timeout=0.5, write_timeout=1.0, cache_seconds=60))
    yield s
    s.stop()


def exchange(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    """Send `data`, then read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server refused before reading it all
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def get(port: int, headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def test_a_scrape_gets_the_page_with_its_content_type(server: MetricsServer) -> None:
    status, body, headers = get(server.port)
    assert (status, body) == (200, PAGE)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_gzip_when_asked_and_head_without_a_body(server: MetricsServer) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    answer = exchange(server.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 200 and b"Content-Encoding: gzip" in head
    assert gzip.decompress(body) == PAGE
    answer = exchange(server.port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b"\r\n\r\n")


def test_keep_alive_serves_several_requests_on_one_connection(server: MetricsServer) -> None:
    two = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 2  # pipelined
    answer = exchange(server.port, two + b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.count(PAGE) == 3


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GET /debug HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello, say
    ],
    ids=["200-header-lines", "100KiB-header", "long-target", "body", "method", "path", "folding", "nul", "garbage"],
)
def test_hostile_requests_are_refused_and_closed(server: MetricsServer, request_bytes: bytes, status: int) -> None:
    answer = exchange(server.port, request_bytes)
    # A refusal may race the client's unsent bytes into a reset; what must never happen is the page.
    assert PAGE not in answer
    assert status_of(answer) in (status, 0), answer[:200]
    if len(request_bytes) < 8192:
        assert status_of(answer) == status


def test_the_head_limits_are_what_the_docstring_says() -> None:
    at_limit = b"GET /metrics HTTP/1.1" + b"".join(b"\r\nX-%d: y" % i for i in range(MAX_HEADER_LINES))
    assert isinstance(parse_head(at_limit), Request)
    assert parse_head(at_limit + b"\r\nOne: more") == Refusal(431, f"more than {MAX_HEADER_LINES} header fields")


def test_a_slow_client_is_dropped_at_the_read_deadline(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = sock.recv(4096)
        assert status_of(answer) == 408
        assert sock.recv(4096) == b""  # closed
        assert time.monotonic() - started < 4  # the 0.5 s deadline, not the client's 5 s timeout


def test_slow_clients_beyond_the_cap_are_evicted_and_a_scrape_still_answers(server: MetricsServer) -> None:
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]  # cap is 8
    try:
        for sock in slow:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        assert get(server.port, timeout=1.0)[0] == 200
        time.sleep(0.05)
        assert server.connections <= 8
    finally:
        for sock in slow:
            sock.close()


def test_a_scrape_flood_renders_once_per_cache_period_off_the_caller_threads(page: Page) -> None:
    s = start(page, ServerLimits(cache_seconds=60))
    try:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(get(s.port)[0])) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 30
        assert page.calls == 1
        assert page.threads and all(name.startswith("metrics-render") for name in page.threads)
    finally:
        s.stop()


def test_a_stale_page_is_rendered_again(page: Page) -> None:
    s = start(page, ServerLimits(cache_seconds=0.0))
    try:
        get(s.port)
        time.sleep(0.05)  # beyond ten times the render's duration
        get(s.port)
        assert page.calls == 2
    finally:
        s.stop()


def test_a_render_that_fails_is_a_500_and_the_next_scrape_renders_again() -> None:
    calls: list[int] = []

    def flaky() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return PAGE

    s = MetricsServer(flaky, limits=ServerLimits(cache_seconds=60))
    s.start(0, "127.0.0.1")
    try:
        assert get(s.port)[0] == 500
        assert get(s.port)[:2] == (200, PAGE)
    finally:
        s.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    return path


def test_with_a_token_only_its_bearer_gets_the_page(page: Page, token_file: Path) -> None:
    s = start(page, token=TokenFile(str(token_file)))
    try:
        status, _, headers = get(s.port)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert get(s.port, {"Authorization": "Bearer wrong"})[0] == 401
        assert get(s.port, {"Authorization": "Basic czNjcmV0LXRva2Vu"})[0] == 401
        assert get(s.port, {"Authorization": "Bearer s3cret-token"})[:2] == (200, PAGE)
        assert page.calls == 1  # refused requests never render
    finally:
        s.stop()


def test_a_rotated_token_is_read_again(token_file: Path) -> None:
    token = TokenFile(str(token_file))
    assert token.check("Bearer s3cret-token")
    replacement = token_file.with_name("token.new")
    replacement.write_text("rotated")
    replacement.replace(token_file)  # as the kubelet swaps a Secret volume: a new inode
    assert token.check("Bearer rotated") and not token.check("Bearer s3cret-token")
    assert not token.check(None)


@pytest.mark.parametrize("content", ["", "  \n", "x" * 5000], ids=["empty", "blank", "too-large"])
def test_a_token_file_without_a_usable_token_is_refused_at_start(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(TokenError, match="metrics token file"):
        TokenFile(str(path))
    with pytest.raises(TokenError, match="No such file"):
        TokenFile(str(tmp_path / "missing"))


def test_stop_closes_the_port(page: Page) -> None:
    s = start(page)
    port = s.port
    s.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_slow_render_is_kept_ten_times_as_long_so_renders_take_at_most_a_tenth_of_a_core() -> None:
    slow = Page(delay=0.2)
    s = start(slow, ServerLimits(cache_seconds=0.0))  # 0.2 s to render: kept 2 s
    try:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            assert get(s.port)[0] == 200
        assert slow.calls == 1
    finally:
        s.stop()


def test_an_invalidated_page_is_rendered_again_at_once(page: Page) -> None:
    s = start(page, ServerLimits(cache_seconds=60))
    try:
        get(s.port)
        get(s.port)
        assert page.calls == 1
        s.exposition.invalidate()
        get(s.port)
        assert page.calls == 2
    finally:
        s.stop()
