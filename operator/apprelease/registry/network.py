"""Sockets for registry requests: an overall deadline per request and a check of every address connected to.

httpx timeouts apply per socket operation, so a server sending one byte a second never trips them. Here
every read, write, TLS handshake and connect is given at most the time left before the current request's
deadline (a context variable set by the caller), and fails once it has passed.

Host names are resolved here and each address is checked before connecting (no link-local such as cloud
metadata endpoints, no unspecified or multicast addresses, loopback only when allowed): checking the
address actually connected to leaves no gap for DNS rebinding. TLS still verifies the host name.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ipaddress
import socket
import ssl
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpcore
import httpx

__all__ = ["AddressRefused", "Deadline", "GuardedTransport", "address_problem", "deadline"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A hostile name server can hold a lookup for long; lookups run here so that a request never waits
# past its deadline (the lookup itself is abandoned, not killed, and this pool bounds how many linger).
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="registry-dns")


class AddressRefused(httpcore.ConnectError):
    """The host resolves only to addresses the operator must not connect to."""


class DeadlineExceeded(httpcore.TimeoutException):
    pass


@dataclass(frozen=True)
class Deadline:
    expires_at: float
    clock: Callable[[], float]

    def remaining(self) -> float:
        return self.expires_at - self.clock()

    def clamp(self, timeout: float | None) -> float:
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded("request deadline passed")
        return left if timeout is None else min(timeout, left)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("registry_deadline", default=None)


@contextlib.contextmanager
def deadline(value: Deadline) -> Iterator[None]:
    """Every socket operation in this block ends by ``value``."""
    token = _current.set(value)
    try:
        yield
    finally:
        _current.reset(token)


def _clamp(timeout: float | None) -> float | None:
    current = _current.get()
    return timeout if current is None else current.clamp(timeout)


def address_problem(address: IPAddress, allow_loopback: bool) -> str | None:
    """Why the operator must not connect to ``address``, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast:
        return "an unspecified or multicast address"
    if address.is_loopback and not allow_loopback:
        return "a loopback address"
    return None


class _GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, allow_loopback: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_loopback = allow_loopback

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port, timeout)
        allowed = [a for a in addresses if address_problem(a, self._allow_loopback) is None]
        if not allowed:
            problem = address_problem(addresses[0], self._allow_loopback) if addresses else "no address"
            raise AddressRefused(f"{host} resolves to {problem}")
        last: Exception | None = None
        for address in allowed:
            try:
                stream = self._inner.connect_tcp(str(address), port, _clamp(timeout), local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
                continue
            return _GuardedStream(stream)
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused("unix sockets are not used for registries")

    @staticmethod
    def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=_clamp(timeout))
        except concurrent.futures.TimeoutError:
            raise httpcore.ConnectTimeout(f"looking up {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot look up {host}: {exc}") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        return found


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc)) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise httpx.TransportError(str(exc)) from exc


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore with the deadline and address checks above; no proxies, HTTP/1.1."""

    def __init__(self, ssl_context: ssl.SSLContext, *, allow_loopback: bool) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=32,
            max_keepalive_connections=16,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(allow_loopback),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
