"""One notification on the wire, under the registry client's hostile-server rules (the README's "Notifications").

Reused from `registry/`, not rewritten: `address_problem` under an `AddressPolicy` (never link-local such as
cloud metadata, unspecified or multicast; loopback and private, shared, ULA or NAT64 ranges only when the
operator lists them), the `Resolver` (lookups that cannot starve one another), and `GuardedTransport` with one
`Deadline` for the whole send (every connect, TLS handshake, read and write ends by it; the address actually
connected to is checked again under the same policy, so DNS rebinding fails). Added here, because a webhook URL
is tenant input where a registry is not:
- https only, plain http only for hosts the operator lists; the name is resolved and every address checked
  BEFORE any connection;
- redirects are never followed (a 3xx is a failure): a tenant's receiver has no reason to send us elsewhere;
- the reply is read up to `MAX_REPLY_BYTES` and dropped; only the status matters.
Retries: 429, 5xx and transport failures, with exponential backoff (tenacity), while the deadline allows.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpcore
import httpx
import tenacity

from apprelease.registry.network import AddressPolicy, Deadline, GuardedTransport, Resolver, address_problem, deadline

__all__ = ["MAX_REPLY_BYTES", "Endpoint", "EndpointRules", "NotifyFailed"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Lookup = Callable[[str, int, float], list[IPAddress]]

MAX_REPLY_BYTES = 4096
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_resolver = Resolver()  # shared by every notification of this process


class NotifyFailed(Exception):
    """The receiver did not take the message; the text says why (no secret URL in it)."""


class _Retryable(NotifyFailed):
    pass


@dataclass(frozen=True)
class EndpointRules:
    """Operator settings: hosts reachable over plain http, and private networks that may be targeted."""

    insecure_hosts: frozenset[str] = frozenset()  # host or host:port, lower case
    allowed_networks: tuple[IPNetwork, ...] = ()
    timeout_seconds: float = 10.0
    max_attempts: int = 3

    @classmethod
    def parse(cls, insecure: Iterable[str], networks: Iterable[str], timeout_seconds: float) -> EndpointRules:
        """Raises ValueError for a network that is not CIDR notation."""
        return cls(
            frozenset(h.lower() for h in insecure),
            tuple(ipaddress.ip_network(n, strict=False) for n in networks),
            timeout_seconds,
        )

    @property
    def policy(self) -> AddressPolicy:
        loopback = any(a in n for a in _LOOPBACK for n in self.allowed_networks if a.version == n.version)
        return AddressPolicy(loopback=loopback, private=False, allowed=self.allowed_networks)

    def scheme_problem(self, url: httpx.URL) -> str | None:
        if url.scheme == "https":
            return None
        if url.scheme != "http":
            return f"scheme {url.scheme!r}"
        host = url.host.lower()
        if host in self.insecure_hosts or (url.port and f"{host}:{url.port}" in self.insecure_hosts):
            return None
        return "plain http to a host the operator does not list (APPRELEASE_NOTIFY_INSECURE_HOSTS)"


def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address of `host`, looked up within `timeout` seconds (the registry client's resolver)."""
    try:
        return _resolver.resolve(host, timeout)
    except httpcore.TimeoutException:
        raise NotifyFailed(f"looking up {host} took too long") from None
    except httpcore.NetworkError as exc:
        raise _Retryable(f"cannot look up {host}: {type(exc).__name__}") from None


@dataclass
class Endpoint:
    """Sends messages; one per operator, shared by every AppRelease (it holds only connection pools)."""

    rules: EndpointRules
    ssl_context: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    resolver: Lookup = resolve
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    transport_for: Callable[[bool], httpx.BaseTransport] | None = None
    _transports: dict[bool, httpx.BaseTransport] = field(default_factory=dict)

    def check(self, url: str) -> httpx.URL:
        """The URL when the operator may send to it; NotifyFailed (before any connection) otherwise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise NotifyFailed("the Secret's url is not a URL") from None
        problem = self.rules.scheme_problem(parsed) or (None if parsed.host else "no host")
        if problem is None:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            addresses = self.resolver(parsed.host, port, self.rules.timeout_seconds)
            problems = [p for p in (address_problem(a, self.rules.policy) for a in addresses) if p is not None]
            problem = "no address" if not addresses else next(iter(problems), None)
        if problem is not None:
            raise NotifyFailed(f"refused to send to {parsed.scheme}://{parsed.host}: {problem}")
        return parsed

    def send(self, url: str, headers: dict[str, str], body: bytes) -> None:
        """POST `body` to `url`, retried with backoff within one deadline; NotifyFailed when not delivered."""
        target = self.check(url)
        until = Deadline(self.clock() + self.rules.timeout_seconds, self.clock)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.rules.max_attempts),
            wait=tenacity.wait_exponential(multiplier=0.5, max=5),
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=lambda seconds: self._wait(seconds, until),
            reraise=True,
        )
        retrying(self._post, target, headers, body, until)

    def _wait(self, seconds: float, until: Deadline) -> None:
        if seconds >= until.remaining():
            raise NotifyFailed("the receiver kept failing until the deadline")
        self.sleep(seconds)

    def _transport(self, loopback: bool) -> httpx.BaseTransport:
        if loopback not in self._transports:
            make = self.transport_for or (lambda _: GuardedTransport(self.ssl_context, self.rules.policy, _resolver))
            self._transports[loopback] = make(loopback)
        return self._transports[loopback]

    def _post(self, url: httpx.URL, headers: dict[str, str], body: bytes, until: Deadline) -> None:
        request = httpx.Request("POST", url, headers={**headers, "User-Agent": "apprelease-operator"}, content=body)
        try:
            with deadline(until):
                response = self._transport(self.rules.policy.loopback).handle_request(request)
                try:
                    _drain(response)
                finally:
                    response.close()
        except httpx.TimeoutException:
            raise NotifyFailed(f"{url.host} did not answer within {self.rules.timeout_seconds:g}s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach {url.host}: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"{url.host} answered HTTP {status}")
        if 300 <= status < 400:
            raise NotifyFailed(f"{url.host} answered a redirect (HTTP {status}); redirects are not followed")
        if status >= 400:
            raise NotifyFailed(f"{url.host} refused the message (HTTP {status})")


def _drain(response: httpx.Response) -> None:
    """Read at most MAX_REPLY_BYTES of the reply (then stop: the connection is closed, not reused)."""
    read = 0
    try:
        chunks: Iterable[bytes] = [response.content]
    except httpx.ResponseNotRead:
        chunks = response.iter_raw()
    for chunk in chunks:
        read += len(chunk)
        if read > MAX_REPLY_BYTES:
            return
