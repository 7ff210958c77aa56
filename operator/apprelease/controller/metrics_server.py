"""The /metrics endpoint with bounded cost, in its own thread and event loop (never the operator's).

Why our own server: prometheus_client's is wsgiref (a thread per connection, no read timeout, 100 header lines of
64 KiB buffered each). aiohttp (here through kopf) bounds line length and count (128 lines of 8 KiB: up to 1 MiB
per request head) and closes a connection idle past its keep-alive timer, but caps neither the head's total size
nor the number of connections, and reads through transports in chunks of up to 256 KiB. What this one holds,
whatever clients do:

- at most `max_connections` connections; when full, a new connection evicts the oldest one that is still
  waiting for its request head (a slow client), so scrapes get in while slowloris clients do not pile up;
- at most MAX_HEAD_BYTES (8 KiB) and MAX_HEADER_LINES (32) per request head, read straight from the socket into one
  buffer (no transport read-ahead); beyond, 431 and close;
- one deadline for a request head (`read_timeout`; also the keep-alive idle time) and one to send a response
  (`write_timeout`);
- the exposition rendered in a worker thread, one render at a time, shared by every client (the same bytes
  object), and kept for `cache_seconds` or ten times as long as it took to render, whichever is longer: whatever
  clients do, rendering takes at most a tenth of a core (2,000 AppReleases render in about 0.5 s).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from apprelease.controller.metrics_auth import TokenFile
from apprelease.controller.metrics_http import (
    HEAD_END,
    MAX_HEAD_BYTES,
    Refusal,
    Request,
    parse_head,
    refusal_response,
    response_head,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # prometheus_client.generate_latest's format
PATH = "/metrics"


@dataclass(frozen=True)
class ServerLimits:
    """What one endpoint may hold. Seconds for the times."""

    max_connections: int = 128
    read_timeout: float = 5.0  # a whole request head, and a keep-alive connection's idle time
    write_timeout: float = 10.0  # a whole response (a client that does not read is dropped)
    cache_seconds: float = 1.0  # how old a served exposition may be, unless rendering is slow:
    render_share: float = 0.1  # a page is kept `render time / render_share` seconds at least


@dataclass
class _Rendered:
    plain: bytes
    until: float  # served until then
    generation: int
    gzipped: asyncio.Future[bytes] | None = None


class Exposition:
    """The rendered registry, cached for `ttl` seconds or `render time / share`, whichever is longer; renders
    run one at a time on `executor`."""

    def __init__(
        self,
        render: Callable[[], bytes],
        executor: ThreadPoolExecutor,
        ttl: float,
        clock: Callable[[], float],
        share: float = 0.1,
    ) -> None:
        self._render, self._executor, self._ttl, self._clock, self._share = render, executor, ttl, clock, share
        self._entry: _Rendered | None = None
        self._pending: asyncio.Future[_Rendered] | None = None
        self._generation = 0  # bumped by `invalidate` (any thread)
        self.renders = 0

    def invalidate(self) -> None:
        """What the page shows changed in a way scrapers must see at once (leadership): render anew."""
        self._generation += 1

    async def body(self, *, gzipped: bool) -> bytes:
        entry = await self._current()
        if not gzipped:
            return entry.plain
        if entry.gzipped is None:
            loop = asyncio.get_running_loop()
            entry.gzipped = loop.run_in_executor(self._executor, lambda: gzip.compress(entry.plain, 1))
        return await asyncio.shield(entry.gzipped)

    async def _current(self) -> _Rendered:
        entry = self._entry
        if entry is not None and self._clock() < entry.until and entry.generation == self._generation:
            return entry
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fresh())
        return await asyncio.shield(self._pending)  # a client that goes away does not cancel the others' render

    async def _fresh(self) -> _Rendered:
        try:
            started, generation = self._clock(), self._generation
            plain = await asyncio.get_running_loop().run_in_executor(self._executor, self._render)
            self.renders += 1
            now = self._clock()
            self._entry = _Rendered(plain, now + max(self._ttl, (now - started) / self._share), generation)
            return self._entry
        finally:
            self._pending = None


class MetricsServer:
    """Serves GET/HEAD /metrics from `render()` (bytes of the text exposition format), optionally behind a token."""

    def __init__(
        self,
        render: Callable[[], bytes],
        *,
        token: TokenFile | None = None,
        limits: ServerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or ServerLimits()
        self._token = token
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-render")
        self.exposition = Exposition(render, self._executor, self.limits.cache_seconds, clock, self.limits.render_share)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[asyncio.Task[None], None] = {}  # connections waiting for a head, oldest first
        self.port = 0

    # --- life cycle (called from any thread) ------------------------------------------------------------
    def start(self, port: int, address: str = "0.0.0.0") -> int:
        """Bind (errors raise here, in the caller) and serve from a daemon thread; returns the bound port."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        listener = socket.create_server((address, port), family=family, backlog=128)
        listener.setblocking(False)
        self.port = int(listener.getsockname()[1])
        ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(listener, ready)), name="metrics-server", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def connections(self) -> int:
        return len(self._tasks)

    # --- the server's own event loop ---------------------------------------------------------------------
    async def _main(self, listener: socket.socket, ready: threading.Event) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        accept = asyncio.create_task(self._accept(listener))
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            accept.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(accept, *self._tasks, return_exceptions=True)
            listener.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as err:  # EMFILE and the like: back off instead of spinning
                log.warning("metrics endpoint: accept failed: %s", err)
                await asyncio.sleep(0.1)
                continue
            if len(self._tasks) >= self.limits.max_connections and not self._evict():
                conn.close()  # every connection is busy being answered: the newcomer waits for nobody
                continue
            conn.setblocking(False)
            task = asyncio.create_task(self._connection(conn))
            self._tasks.add(task)
            self._waiting[task] = None  # evictable from the start: it has sent no request yet
            task.add_done_callback(functools.partial(self._closed, conn=conn))
            await asyncio.sleep(0)  # sock_accept does not yield when connections queue: let them run

    def _closed(self, task: asyncio.Task[None], conn: socket.socket) -> None:
        # Here, not in the task: a task evicted before it first ran never executes its own `finally`.
        self._tasks.discard(task)
        self._waiting.pop(task, None)
        conn.close()

    def _evict(self) -> bool:
        for task in self._waiting:
            del self._waiting[task]
            task.cancel()
            return True
        return False

    async def _connection(self, conn: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        buffer = bytearray()
        try:
            while True:
                self._waiting.pop(task, None)
                self._waiting[task] = None  # the newest waiting: evicted last
                try:
                    async with asyncio.timeout(self.limits.read_timeout):
                        head = await self._read_head(conn, buffer)
                except TimeoutError:
                    if buffer:
                        await self._send(conn, refusal_response(Refusal(408, "request head not received in time")))
                    return
                finally:
                    self._waiting.pop(task, None)
                if head is None:
                    return  # the client closed
                request = parse_head(head) if isinstance(head, bytes) else head
                if isinstance(request, Refusal):
                    await self._send(conn, refusal_response(request))
                    return
                if not await self._answer(conn, request):
                    return
        except (OSError, TimeoutError):
            return

    async def _read_head(self, conn: socket.socket, buffer: bytearray) -> bytes | Refusal | None:
        """The next request head, leaving what follows in `buffer`; None at a clean end of the connection."""
        loop = asyncio.get_running_loop()
        limit = MAX_HEAD_BYTES + len(HEAD_END)
        while True:
            while buffer.startswith(b"\r\n"):  # RFC 9112 2.2: ignore empty lines before a request line
                del buffer[:2]
            end = buffer.find(HEAD_END)
            if end >= 0:
                head = bytes(buffer[:end])
                del buffer[: end + len(HEAD_END)]
                return head
            if len(buffer) >= limit:
                return Refusal(431, f"request head over {MAX_HEAD_BYTES} bytes")
            chunk = await loop.sock_recv(conn, min(4096, limit - len(buffer)))
            if not chunk:
                return None
            buffer += chunk

    async def _answer(self, conn: socket.socket, request: Request) -> bool:
        """Send the response to one request; True when the connection stays open for another."""
        if request.method not in ("GET", "HEAD"):
            await self._send(conn, refusal_response(Refusal(405, "GET or HEAD only"), [("Allow", "GET, HEAD")]))
            return False
        if request.path != PATH:
            await self._send(conn, refusal_response(Refusal(404, f"only {PATH} is served")))
            return False
        if self._token is not None and not self._token.check(request.headers.get("authorization")):
            challenge = [("WWW-Authenticate", 'Bearer realm="apprelease-metrics"')]
            await self._send(conn, refusal_response(Refusal(401, "a bearer token is required"), challenge))
            return False
        try:
            body = await self.exposition.body(gzipped=request.accepts_gzip)
        except Exception:
            log.exception("metrics endpoint: rendering the exposition failed")
            await self._send(conn, refusal_response(Refusal(500, "rendering the metrics failed")))
            return False
        fields = [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        if request.accepts_gzip:
            fields += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        await self._send(conn, response_head(200, fields, keep_alive=request.keep_alive))
        if request.method == "GET":
            await self._send(conn, body)
        return request.keep_alive

    async def _send(self, conn: socket.socket, data: bytes) -> None:
        async with asyncio.timeout(self.limits.write_timeout):
            await asyncio.get_running_loop().sock_sendall(conn, data)
