"""A hostile registry cannot hurt the operator: real HTTP servers on loopback, started by each test.

Each test is a regression test of issue 9: on the client before it, each of them failed (memory in the
hundreds of MiB, a worker held for minutes, an uncaught RecursionError, a refresh token re-sent to another
host, a cookie replayed across tenants, error messages that tell a closed port from an open one).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from apprelease.core.reference import parse
from apprelease.registry import Credential, RegistryClient, RegistryError, RegistrySettings, RegistryUnavailable
from tests.hostile import (
    OCI_MANIFEST,
    Request,
    Server,
    dribble,
    gzip_bomb,
    image_manifest,
    peak_memory,
    respond,
    run_with_deadline,
    sha,
)

MiB = 1024 * 1024
DIGEST = "sha256:" + "a" * 64
ALICE = Credential(username="alice", password=SecretStr("alice-Secret"))
BOB = Credential(username="bob", password=SecretStr("bob-Secret"))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


def serve(servers: list[Server], handler: object, host: str = "127.0.0.1") -> Server:
    server = Server(handler, host)  # type: ignore[arg-type]
    servers.append(server)
    return server


def client_for(*servers: Server, timeout: float = 10.0) -> RegistryClient:
    settings = RegistrySettings(insecure_registries=[s.netloc for s in servers], timeout_seconds=timeout)
    return RegistryClient(settings)


def head_without_digest_then(body: bytes, headers: dict[str, str]) -> object:
    """HEAD answers without a digest, so the client GETs the manifest (the bytes under test)."""

    def handler(conn: socket.socket, request: Request) -> None:
        if request.method == "HEAD":
            respond(conn, 200, {"Content-Type": OCI_MANIFEST})
        else:
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, **headers}, body)

    return handler


# -- memory --------------------------------------------------------------------------------------------


def test_gzip_of_gzip_bomb_is_cut_at_the_limit_without_inflating_it(servers: list[Server]) -> None:
    bomb = gzip_bomb(256 * MiB)
    assert len(bomb) < 4096
    server = serve(servers, head_without_digest_then(bomb, {"Content-Encoding": "gzip, gzip"}))
    with client_for(server) as client, peak_memory() as peak:
        with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
            client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert peak[0] < 32 * MiB
    assert server.requests[-1].headers.get("accept-encoding") == "identity"


def test_an_encoding_that_cannot_be_bounded_is_refused(servers: list[Server]) -> None:
    server = serve(servers, head_without_digest_then(b"\x1b\x00\x00", {"Content-Encoding": "br"}))
    with client_for(server) as client, pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))


def _config_server(servers: list[Server], config: bytes) -> Server:
    manifest = image_manifest(config)

    def handler(conn: socket.socket, request: Request) -> None:
        if "/blobs/" in request.path:
            respond(conn, 200, {"Content-Type": "application/octet-stream"}, config)
        else:
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha(manifest)}, manifest)

    return serve(servers, handler)


def test_a_config_of_millions_of_empty_lists_is_refused_before_parsing(servers: list[Server]) -> None:
    config = b"[" + b"[]," * 2_790_000 + b"[]]"  # just under the 8 MiB config limit
    assert 8 * MiB - 64 * 1024 < len(config) <= 8 * MiB
    server = _config_server(servers, config)
    with client_for(server) as client, peak_memory() as peak:
        with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
            client.labels(parse(f"{server.netloc}/shop/web:v1"))
    assert peak[0] < 64 * MiB  # parsed, it costs ~220 MiB


@pytest.mark.parametrize("where", ["manifest", "config"])
def test_deeply_nested_json_is_a_registry_error_not_a_recursion_error(servers: list[Server], where: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    if where == "config":
        server = _config_server(servers, deep)
    else:
        server = serve(servers, head_without_digest_then(deep, {}))
    with client_for(server) as client, pytest.raises(RegistryError):
        client.labels(parse(f"{server.netloc}/shop/web:v1"))


def _bearer_registry(servers: list[Server], token_handler: object) -> tuple[Server, Server]:
    realm = serve(servers, token_handler)

    def registry(conn: socket.socket, request: Request) -> None:
        if request.headers.get("authorization") == "Bearer good-token":
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST})
        else:
            respond(conn, 401, {"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="reg"'})

    return serve(servers, registry), realm


def test_a_deeply_nested_token_reply_is_a_registry_error(servers: list[Server]) -> None:
    deep = b'{"token": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    registry, _ = _bearer_registry(servers, lambda conn, request: respond(conn, 200, {}, deep))
    with client_for(registry) as client, pytest.raises(RegistryError):
        client.resolve(parse(f"{registry.netloc}/shop/web:v1"), ALICE)


# -- time ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["status line", "body"])
def test_a_registry_sending_one_byte_at_a_time_is_cut_at_the_deadline(servers: list[Server], part: str) -> None:
    def handler(conn: socket.socket, request: Request) -> None:
        if part == "status line":
            dribble(conn, b"HTTP/1.1 200 OK\r\n" * 100)
        elif request.method == "HEAD":
            respond(conn, 200, {"Content-Type": OCI_MANIFEST})
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            dribble(conn, b"{" * 1000)

    server = serve(servers, handler)
    errors: list[Exception] = []

    def call() -> None:
        with client_for(server, timeout=1.5) as client:
            try:
                client.resolve(parse(f"{server.netloc}/shop/web:v1"))
            except Exception as exc:
                errors.append(exc)

    finished, elapsed = run_with_deadline(call, 10)
    assert finished and elapsed < 4
    [error] = errors
    assert isinstance(error, RegistryUnavailable) and "unreachable or not a registry" in str(error)


def test_the_deadline_covers_the_token_round_trip(servers: list[Server]) -> None:
    def slow_token(conn: socket.socket, request: Request) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        dribble(conn, b'{"token": "good-token"' + b" " * 77 + b"}")

    registry, _ = _bearer_registry(servers, slow_token)
    errors: list[Exception] = []

    def call() -> None:
        with client_for(registry, timeout=1.5) as client:
            try:
                client.resolve(parse(f"{registry.netloc}/shop/web:v1"), ALICE)
            except Exception as exc:
                errors.append(exc)

    finished, elapsed = run_with_deadline(call, 10)
    assert finished and elapsed < 4
    assert [type(e) for e in errors] == [RegistryUnavailable]


# -- redirects and tokens ------------------------------------------------------------------------------


def redirect_to(location: str, status: int = 307) -> object:
    return lambda conn, request: respond(conn, status, {"Location": location})


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata: link-local
        "http://[fe80::1]/x",
        "http://0.0.0.0:5000/x",  # unspecified: reaches the local host on Linux
        "http://registry.example.invalid/v2/",  # plain http to a host not listed as insecure
        "ftp://127.0.0.1/x",
    ],
)
def test_redirects_are_checked_hop_by_hop(servers: list[Server], location: str) -> None:
    server = serve(servers, redirect_to(location))
    with client_for(server, timeout=3) as client, pytest.raises(RegistryUnavailable, match="refused"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert len(server.requests) == 1


def test_redirect_chains_are_bounded(servers: list[Server]) -> None:
    def hop(conn: socket.socket, request: Request) -> None:
        count = int(request.path.rsplit("-", 1)[-1]) if "/hop-" in request.path else 0
        if count >= 10:
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST})
        else:
            respond(conn, 302, {"Location": f"/hop-{count + 1}"})

    server = serve(servers, hop)
    with client_for(server) as client, pytest.raises(RegistryUnavailable, match="redirected more than"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))


def test_no_authorization_crosses_to_another_host(servers: list[Server]) -> None:
    config = b'{"config": {"Labels": {"a": "b"}}}'
    manifest = image_manifest(config)
    cdn = serve(servers, lambda conn, request: respond(conn, 200, {}, config), host="127.0.0.2")

    def registry(conn: socket.socket, request: Request) -> None:
        if request.headers.get("authorization") is None:
            respond(conn, 401, {"WWW-Authenticate": 'Basic realm="r"'})
        elif "/blobs/" in request.path:
            respond(conn, 307, {"Location": f"{cdn.url}/blob"})
        else:
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha(manifest)}, manifest)

    server = serve(servers, registry)
    with client_for(server, cdn) as client:
        assert client.labels(parse(f"{server.netloc}/shop/web:v1"), ALICE) == {"a": "b"}
    assert [r.headers.get("authorization") for r in cdn.requests] == [None]


def test_a_token_realm_redirected_to_a_metadata_address_is_refused(servers: list[Server]) -> None:
    registry, realm = _bearer_registry(servers, redirect_to("http://169.254.169.254/computeMetadata/v1/token"))
    with client_for(registry, timeout=3) as client, pytest.raises(RegistryUnavailable, match="refused"):
        client.resolve(parse(f"{registry.netloc}/shop/web:v1"), ALICE)
    assert len(realm.requests) == 1


def test_a_refresh_token_is_never_re_sent_to_another_host(servers: list[Server]) -> None:
    elsewhere = serve(servers, lambda conn, request: respond(conn, 200, {}, b'{"token": "good-token"}'), "127.0.0.2")
    registry, realm = _bearer_registry(servers, redirect_to(f"{elsewhere.url}/steal", 307))
    identity = Credential(identity_token=SecretStr("refresh-Secret-token"))
    with client_for(registry, elsewhere) as client, pytest.raises(RegistryUnavailable, match="refused"):
        client.resolve(parse(f"{registry.netloc}/shop/web:v1"), identity)
    assert [r.method for r in realm.requests] == ["POST"]
    assert elsewhere.requests == []


# -- cookies -------------------------------------------------------------------------------------------


def test_no_cookie_earned_by_one_tenant_is_replayed_for_another(servers: list[Server]) -> None:
    def registry(conn: socket.socket, request: Request) -> None:
        if request.headers.get("authorization") is None and "cookie" not in request.headers:
            respond(conn, 401, {"WWW-Authenticate": 'Basic realm="r"'})
        else:
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST}
            respond(conn, 200, {**headers, "Set-Cookie": "session=alice-session; Path=/"})

    server = serve(servers, registry)
    ref = parse(f"{server.netloc}/shop/web:v1")
    with client_for(server) as client:
        client.resolve(ref, ALICE)
        client.resolve(ref, BOB)
        with pytest.raises(RegistryError):
            client.resolve(ref, None)  # anonymous: the registry wants credentials, a cookie must not stand in
    assert all("cookie" not in r.headers for r in server.requests)


# -- what a tenant can learn ---------------------------------------------------------------------------


def test_a_closed_port_an_open_one_and_a_non_registry_look_the_same(servers: list[Server]) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    silent = serve(servers, lambda conn, request: time.sleep(3))
    garbage = serve(servers, lambda conn, request: conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n"))
    web = serve(servers, lambda conn, request: respond(conn, 200, {"Content-Type": "text/html"}, b"<html>hi</html>"))
    tls = serve(servers, lambda conn, request: respond(conn, 400, {}, b"plain http"))
    targets = {
        "closed": (f"127.0.0.1:{closed_port}", True),
        "silent": (silent.netloc, True),
        "garbage": (garbage.netloc, True),
        "web page": (web.netloc, True),
        "tls to a plain port": (tls.netloc, False),
    }
    messages = {}
    for what, (netloc, insecure) in targets.items():
        settings = RegistrySettings(insecure_registries=[netloc] if insecure else [], timeout_seconds=1, max_attempts=1)
        with RegistryClient(settings) as client, pytest.raises(RegistryError) as info:
            client.resolve(parse(f"{netloc}/shop/web:v1"))
        messages[what] = re.sub(r"127\.0\.0\.1:\d+", "HOST", str(info.value))
    assert set(messages.values()) == {"registry HOST unreachable or not a registry"}, messages
