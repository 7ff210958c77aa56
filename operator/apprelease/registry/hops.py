"""Where one registry's requests may go: the registry itself, its token realm, redirect hops.

Scheme rules (https, or http only for insecure registries and loopback test registries), then address
rules (network.AddressPolicy): the registry's own host may be anywhere but link-local and the like; any
other host (a token realm, a redirect target, a CDN) may not be in a private, shared, ULA, NAT64 or other
non-global range unless the registry itself is in that network, or the operator allows it
(``allowed_private_networks``). Literal addresses are checked here before any request; names are checked
by address at connect time (network.GuardedTransport), with the policy ``HopRules.policy`` gives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from .errors import RegistryError
from .network import AddressPolicy, IPNetwork, Resolver, address_problem, networks_of

__all__ = ["HopRules", "is_loopback_host", "normalize_host", "private_networks"]


def normalize_host(host: str) -> str:
    """A registry host as configured (``insecureRegistries``), compared the way requests spell it."""
    host = host.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    return host.rstrip("/")


def is_loopback_host(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def private_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks (CIDR) the operator allows hops to; RegistryError naming a value that is not one."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise RegistryError(f"allowed private network {value!r} is not a network (CIDR, e.g. 10.0.0.0/8)") from None
    return tuple(networks)


@dataclass(frozen=True)
class HopRules:
    """Which URLs one registry's requests may reach (the registry itself, its token realm, redirect hops)."""

    insecure: frozenset[str]  # host[:port] spelled as configured, lower case
    loopback_ok: bool  # the registry itself was named by a loopback address (a local or test registry)
    host: str = ""  # the registry's own host: it may be anywhere but link-local and the like
    allowed: tuple[IPNetwork, ...] = ()  # networks the operator allows hops to
    resolver: Resolver | None = None  # to find out where the registry itself is, for hops elsewhere

    @classmethod
    def for_registry(
        cls, base: httpx.URL, insecure: frozenset[str], allowed: tuple[IPNetwork, ...], resolver: Resolver
    ) -> HopRules:
        return cls(insecure, is_loopback_host(base.host), base.host.lower(), allowed, resolver)

    def allows_loopback(self, url: httpx.URL) -> bool:
        return self.loopback_ok or self._insecure(url)

    def policy(self, url: httpx.URL) -> AddressPolicy:
        """Where a request to ``url`` may connect: the registry's own host anywhere allowed; another host
        (a token realm, a redirect target) not into private ranges, unless the registry itself is in that
        range or the operator allows it."""
        loopback = self.allows_loopback(url)
        if url.host.lower() == self.host:
            return AddressPolicy(loopback, private=True)
        return AddressPolicy(loopback, allowed=self.allowed + self._home())

    def _home(self) -> tuple[IPNetwork, ...]:
        """The special networks the registry's own addresses are in (none when they cannot be looked up)."""
        if self.resolver is None or not self.host:
            return ()
        try:
            addresses = self.resolver.resolve(self.host, None)
        except Exception:  # httpcore's lookup errors: no home, so the stricter rule applies
            return ()
        return tuple(dict.fromkeys(net for address in addresses for net in networks_of(address)))

    def problem(self, url: httpx.URL) -> str | None:
        host = url.host
        if url.scheme == "http":
            if not (self._insecure(url) or (self.loopback_ok and is_loopback_host(host))):
                return "plain http to a host not listed as an insecure registry"
        elif url.scheme != "https":
            return f"scheme {url.scheme!r}"
        if not host:
            return "no host"
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if is_loopback_host(host) and not self.allows_loopback(url):
                return "a loopback address"
            return None  # names are checked at connect time, by address
        return address_problem(address, self.policy(url))

    def _insecure(self, url: httpx.URL) -> bool:
        host = url.host.lower()
        hostport = f"{host}:{url.port}" if url.port else host
        bracketed = f"[{host}]:{url.port}" if url.port and ":" in host else hostport
        return hostport in self.insecure or bracketed in self.insecure or host in self.insecure
