"""Sockets for registry requests: an overall deadline, a check of every address connected to, and lookups.

httpx timeouts apply per socket operation, so a server sending one byte a second never trips them. Here
every read, write, TLS handshake and connect is given at most the time left before the current request's
deadline (a context variable set by the caller), and fails once it has passed.

Host names are resolved here (``Resolver``) and each address is checked against an ``AddressPolicy`` before
connecting: never link-local (cloud metadata endpoints), unspecified or multicast; loopback only when
allowed; private, shared, ULA, NAT64 and other non-global addresses only for the registry's own host, or
networks the registry itself is in, or networks the operator allows. Checking the address actually
connected to leaves no gap for DNS rebinding. TLS still verifies the host name.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpcore
import httpx

from .caches import Cache

__all__ = [
    "SPECIAL_NETWORKS",
    "AddressPolicy",
    "AddressRefused",
    "Deadline",
    "GuardedTransport",
    "Refused",
    "Resolver",
    "address_problem",
    "deadline",
    "networks_of",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges a hop (token realm, redirect) may not lead to unless the registry itself is there or the operator
# allows them: RFC 1918, RFC 6598 (carrier-grade NAT), RFC 4193 (ULA), RFC 6052 / RFC 8215 (NAT64, whose
# gateways reach IPv4 behind them). Other non-global addresses (ipaddress.is_global) are refused too.
SPECIAL_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), what)
    for net, what in (
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("fc00::/7", "a unique local (ULA) address"),
        ("64:ff9b::/96", "a NAT64 address"),
        ("64:ff9b:1::/48", "a NAT64 address"),
    )
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class AddressRefused(httpcore.ConnectError):
    """The host resolves only to addresses the operator must not connect to; the message says why."""


class Refused(httpx.ConnectError):
    """AddressRefused, as httpx sees it."""


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


@dataclass(frozen=True)
class AddressPolicy:
    """Where one kind of request may connect: ``loopback``; ``private`` (any non-global address: the
    registry's own host); ``allowed`` (networks allowed besides). Hashable: one connection pool per policy,
    so a connection opened under one is never reused under a stricter one."""

    loopback: bool
    private: bool = False
    allowed: tuple[IPNetwork, ...] = ()


def _unwrapped(address: IPAddress) -> IPAddress:
    """IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _IPV4_COMPATIBLE and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def networks_of(address: IPAddress) -> tuple[IPNetwork, ...]:
    """The special networks ``address`` is in (what "the registry itself is there" allows)."""
    address = _unwrapped(address)
    return tuple(net for net, _ in SPECIAL_NETWORKS if address.version == net.version and address in net)


def address_problem(address: IPAddress, policy: AddressPolicy) -> str | None:
    """Why the operator must not connect to ``address`` under ``policy``, or None."""
    address = _unwrapped(address)
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast:
        return "an unspecified or multicast address"
    if address.is_loopback:
        return None if policy.loopback else "a loopback address"
    if policy.private or any(address.version == n.version and address in n for n in policy.allowed):
        return None
    for net, what in SPECIAL_NETWORKS:
        if address.version == net.version and address in net:
            return f"{what} ({net})"
    if not address.is_global:
        return "a non-global address"
    return None


def system_lookup(host: str) -> list[IPAddress]:
    """The host's addresses, from the system resolver (getaddrinfo)."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


class _Lookup:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: list[IPAddress] = []
        self.error: str | None = None


class Resolver:
    """Host-name lookups that cannot starve one another.

    A hostile name server can hold a lookup for long, and getaddrinfo cannot be cancelled. So each lookup
    runs in its own thread, at most one per host name at a time (callers of a name already being looked up
    wait for that lookup, within their own deadline), and at most ``max_pending`` lookups linger in all:
    four names that never answer cost four threads, never the lookups of other names. Answers are kept
    ``cache_seconds`` (the addresses checked are the ones connected to, so this opens no rebinding gap).
    ``lookup`` is the seam tests use to map names to addresses, or to never answer.
    """

    def __init__(
        self,
        lookup: Callable[[str], list[IPAddress]] = system_lookup,
        *,
        max_pending: int = 64,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._max_pending = max_pending
        self._pending: dict[str, _Lookup] = {}
        self._lock = threading.Lock()
        self._answers: Cache[str, list[IPAddress]] = Cache(1024, ttl_seconds=cache_seconds, clock=clock)

    def resolve(self, host: str, timeout: float | None) -> list[IPAddress]:
        """The addresses of ``host`` (a name or an address literal); httpcore errors on failure or timeout."""
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        key = host.lower().rstrip(".")
        cached = self._answers.get(key)
        if cached is not None:
            return cached
        with self._lock:
            lookup = self._pending.get(key)
            if lookup is None:
                if len(self._pending) >= self._max_pending:
                    raise httpcore.ConnectError(f"too many host-name lookups pending; {host} not looked up")
                lookup = self._pending[key] = _Lookup()
                threading.Thread(target=self._run, args=(key, lookup), daemon=True, name="registry-dns").start()
        if not lookup.done.wait(_clamp(timeout)):
            raise httpcore.ConnectTimeout(f"looking up {host} took too long")
        if lookup.error is not None:
            raise httpcore.ConnectError(f"cannot look up {host}: {lookup.error}")
        return lookup.addresses

    def _run(self, key: str, lookup: _Lookup) -> None:
        try:
            lookup.addresses = list(self._lookup(key))
            if lookup.addresses:
                self._answers.put(key, lookup.addresses)
            else:
                lookup.error = "no address"
        except Exception as exc:  # getaddrinfo's errors, or a seam's: reported to every waiter
            lookup.error = type(exc).__name__
        finally:
            with self._lock:
                del self._pending[key]
            lookup.done.set()


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
    def __init__(self, policy: AddressPolicy, resolver: Resolver, inner: httpcore.NetworkBackend | None) -> None:
        self._inner = inner or httpcore.SyncBackend()
        self._policy = policy
        self._resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolver.resolve(host, timeout)
        allowed = [a for a in addresses if address_problem(a, self._policy) is None]
        if not allowed:
            problem = address_problem(addresses[0], self._policy) if addresses else "no address"
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
    except AddressRefused as exc:
        raise Refused(str(exc)) from exc
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc)) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise httpx.TransportError(str(exc)) from exc


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore with the deadline and address checks above; no proxies, HTTP/1.1.
    ``backend`` is the seam under the checks (tests record connection attempts with it)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        policy: AddressPolicy,
        resolver: Resolver,
        backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=32,
            max_keepalive_connections=16,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(policy, resolver, backend),
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
