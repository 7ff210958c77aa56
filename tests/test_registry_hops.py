"""Where token realms and redirects may lead (issue 15): never into private, shared, ULA, NAT64 or other
non-global ranges unless the registry itself is there or the operator allows it.

No test connects to such an address: names are mapped to them through the resolver seam, and the socket
seam under the address checks records every connection attempt, opening real sockets only to loopback
(the hostile registries of tests/hostile.py). Literal addresses are refused before any lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator

import httpcore
import httpx
import pytest
from pydantic import SecretStr

from apprelease.reference import parse
from apprelease.registry import Credential, RegistryClient, RegistrySettings, RegistryUnavailable, Resolver
from apprelease.registry.hops import HopRules
from apprelease.registry.network import AddressPolicy, address_problem
from tests.hostile import OCI_MANIFEST, Request, Server, respond

ALICE = Credential(username="alice", password=SecretStr("alice-Secret"))
DIGEST = "sha256:" + "a" * 64
ADDRESSES = {
    "internal.test": "10.0.0.5",
    "corp.test": "172.16.3.4",
    "home.test": "192.168.1.1",
    "cgnat.test": "100.64.0.9",
    "ula.test": "fd00::5",
    "nat64.test": "64:ff9b::a00:5",
    "nat64-local.test": "64:ff9b:1::a00:5",
    "mapped.test": "::ffff:10.0.0.5",
    "compatible.test": "::10.0.0.5",
    "benchmark.test": "198.18.0.1",
    "metadata.test": "169.254.169.254",
    "registry.corp.test": "10.0.0.7",
}


class Recording(httpcore.NetworkBackend):
    """Opens sockets to loopback only; records every address a connection was attempted to."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.attempts.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError("the test never connects outside loopback")
        return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)


def fake_lookup(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if host in ADDRESSES:
        return [ipaddress.ip_address(ADDRESSES[host])]
    raise socket.gaierror("unknown in this test")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def serve(servers: list[Server], handler: object) -> Server:
    server = Server(handler)  # type: ignore[arg-type]
    servers.append(server)
    return server


def client(server: Server, backend: Recording, allowed: list[str] | None = None) -> RegistryClient:
    settings = RegistrySettings(
        insecure_registries=[server.netloc], timeout_seconds=3, allowed_private_networks=allowed or []
    )
    return RegistryClient(settings, resolver=Resolver(fake_lookup), network_backend=backend)


def redirect_to(location: str) -> object:
    return lambda conn, request: respond(conn, 307, {"Location": location})


def realm_at(realm: str) -> object:
    def registry(conn: socket.socket, request: Request) -> None:
        if request.headers.get("authorization") == "Bearer good-token":
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST})
        else:
            respond(conn, 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})

    return registry


PRIVATE_NAMES = [name for name in ADDRESSES if name not in ("metadata.test", "registry.corp.test")]


@pytest.mark.parametrize("name", PRIVATE_NAMES)
@pytest.mark.parametrize("hop", ["redirect", "realm"])
def test_a_hop_to_a_name_in_a_private_range_is_refused_before_connecting(
    servers: list[Server], name: str, hop: str
) -> None:
    url = f"https://{name}/token" if hop == "realm" else f"https://{name}/v2/shop/web/manifests/v1"
    server = serve(servers, realm_at(url) if hop == "realm" else redirect_to(url))
    backend = Recording()
    with client(server, backend) as registry, pytest.raises(RegistryUnavailable) as refused:
        registry.resolve(parse(f"{server.netloc}/shop/web:v1"), ALICE)
    assert "refused" in str(refused.value)
    assert "address" in str(refused.value)  # says why: which kind of address
    assert set(backend.attempts) == {"127.0.0.1"}  # the registry only: no connection toward the hop


@pytest.mark.parametrize("address", [ADDRESSES[name] for name in PRIVATE_NAMES])
@pytest.mark.parametrize("hop", ["redirect", "realm"])
def test_a_hop_to_a_private_address_literal_is_refused_before_connecting(
    servers: list[Server], address: str, hop: str
) -> None:
    host = f"[{address}]" if ":" in address else address
    url = f"https://{host}/token" if hop == "realm" else f"https://{host}/v2/shop/web/manifests/v1"
    server = serve(servers, realm_at(url) if hop == "realm" else redirect_to(url))
    backend = Recording()
    with client(server, backend) as registry, pytest.raises(RegistryUnavailable, match="refused"):
        registry.resolve(parse(f"{server.netloc}/shop/web:v1"), ALICE)
    assert set(backend.attempts) == {"127.0.0.1"}


def test_the_refusal_says_why(servers: list[Server]) -> None:
    server = serve(servers, redirect_to("https://internal.test/v2/shop/web/manifests/v1"))
    with client(server, Recording()) as registry, pytest.raises(RegistryUnavailable) as refused:
        registry.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert "internal.test resolves to a private address (10.0.0.0/8)" in str(refused.value)


def test_networks_the_operator_allows_are_reached(servers: list[Server]) -> None:
    server = serve(servers, redirect_to("https://internal.test/v2/shop/web/manifests/v1"))
    backend = Recording()
    with client(server, backend, allowed=["10.0.0.0/24"]) as registry, pytest.raises(RegistryUnavailable):
        registry.resolve(parse(f"{server.netloc}/shop/web:v1"))
    # Allowed, so attempted (the recording backend refuses it: the test itself never leaves loopback).
    assert "10.0.0.5" in backend.attempts


def test_an_allowed_network_allows_only_itself(servers: list[Server]) -> None:
    server = serve(servers, redirect_to("https://corp.test/v2/shop/web/manifests/v1"))
    backend = Recording()
    with client(server, backend, allowed=["10.0.0.0/8"]) as registry, pytest.raises(RegistryUnavailable):
        registry.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert set(backend.attempts) == {"127.0.0.1"}


def test_a_registry_in_a_private_range_may_hop_within_it() -> None:
    resolver = Resolver(fake_lookup)
    rules = HopRules.for_registry(httpx.URL("https://registry.corp.test"), frozenset(), (), resolver)
    # The registry itself, wherever it is (an in-cluster registry), but never link-local.
    own = rules.policy(httpx.URL("https://registry.corp.test/v2/"))
    assert address_problem(ipaddress.ip_address("10.0.0.7"), own) is None
    assert address_problem(ipaddress.ip_address("169.254.169.254"), own) == "a link-local address"
    # Its token service in the same range: allowed; in another private range: refused.
    realm = rules.policy(httpx.URL("https://auth.corp.test/token"))
    assert address_problem(ipaddress.ip_address("10.9.9.9"), realm) is None
    assert address_problem(ipaddress.ip_address("192.168.1.1"), realm) is not None
    assert rules.problem(httpx.URL("https://10.1.2.3/token")) is None
    assert rules.problem(httpx.URL("https://[fd00::1]/token")) is not None
    # A registry named by a literal address in the range: the same.
    literal = HopRules.for_registry(httpx.URL("https://10.0.0.7:5000"), frozenset(), (), resolver)
    assert literal.problem(httpx.URL("https://10.200.0.1/token")) is None
    assert literal.problem(httpx.URL("https://100.64.0.1/token")) is not None


def test_a_public_registry_may_not_hop_into_any_private_range() -> None:
    resolver = Resolver(lambda host: [ipaddress.ip_address("203.0.113.7")])  # TEST-NET-3: never contacted
    rules = HopRules.for_registry(httpx.URL("https://registry.example"), frozenset(), (), resolver)
    for name in PRIVATE_NAMES:
        policy = rules.policy(httpx.URL("https://elsewhere.example/"))
        problem = address_problem(ipaddress.ip_address(ADDRESSES[name]), policy)
        assert problem is not None, name
    assert address_problem(ipaddress.ip_address("8.8.8.8"), AddressPolicy(loopback=False)) is None
