"""Registries as they are in the wild (issue 15): HEAD that lies, schema 1 documents, garbled challenges.

Real HTTP servers on loopback (tests/hostile.py); each test failed on the client before issue 15.
"""

from __future__ import annotations

import json
import random
import socket
import string
from collections.abc import Iterator

import httpx
import pytest

from apprelease.reference import parse
from apprelease.registry import (
    RegistryClient,
    RegistryError,
    RegistrySettings,
    TagNotFound,
    UnsupportedManifest,
)
from apprelease.registry.auth import parse_challenges
from tests.hostile import OCI_MANIFEST, Request, Server, image_manifest, respond, sha

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_JSON = "application/vnd.docker.distribution.manifest.v1+json"
BODY = image_manifest(b'{"config": {"Labels": {"a": "b"}}}')


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


def client_for(server: Server, **settings: object) -> RegistryClient:
    return RegistryClient(RegistrySettings(insecure_registries=[server.netloc], **settings))  # type: ignore[arg-type]


def methods(server: Server) -> list[str]:
    return [r.method for r in server.requests]


# -- HEAD failures fall back to one GET (containerd, crane and Docker's client do the same) --------------


def head_answers(status: int, headers: dict[str, str] | None = None, get_status: int = 200) -> object:
    def handler(conn: socket.socket, request: Request) -> None:
        if request.method == "HEAD":
            respond(conn, status, headers)
        elif get_status == 200:
            respond(conn, 200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha(BODY)}, BODY)
        else:
            error = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}).encode()
            respond(conn, get_status, {"Content-Type": "application/json"}, error)

    return handler


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (404, {}),  # Sonatype Nexus and others: HEAD 404 while GET serves the manifest
        (403, {}),  # proxies that forbid HEAD
        (500, {}),  # a 5xx on HEAD only: one GET, no retries of the HEAD
        (502, {}),
        (200, {"Content-Type": OCI_MANIFEST}),  # no Docker-Content-Digest
        (200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "sha256:nothex"}),  # malformed
        (200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "md5:" + "a" * 32}),
    ],
)
def test_a_failed_head_falls_back_to_one_get_that_hashes_the_bytes(
    servers: list[Server], status: int, headers: dict[str, str]
) -> None:
    server = serve(servers, head_answers(status, headers))
    with client_for(server) as client:
        resolved = client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert resolved.digest == sha(BODY)
    assert resolved.media_type == OCI_MANIFEST
    assert methods(server) == ["HEAD", "GET"]


def test_a_missing_tag_still_reads_tag_not_found_after_one_get(servers: list[Server]) -> None:
    server = serve(servers, head_answers(404, {}, get_status=404))
    with client_for(server) as client, pytest.raises(TagNotFound, match="tag 'v1' not found"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert methods(server) == ["HEAD", "GET"]


def test_a_head_401_is_still_answered_with_credentials_not_a_get(servers: list[Server]) -> None:
    server = serve(servers, head_answers(401, {"WWW-Authenticate": 'Basic realm="r"'}))
    with client_for(server) as client, pytest.raises(RegistryError, match="denied access"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert methods(server) == ["HEAD"]


# -- only the media types asked for -----------------------------------------------------------------------


def _schema1(tag: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 1,
            "name": "shop/web",
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": "{}"}],
            "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "y"}],
        },
        indent=3,
    ).encode()


def serving(body: bytes, content_type: str, head_type: str | None = None) -> object:
    def handler(conn: socket.socket, request: Request) -> None:
        headers = {"Content-Type": head_type or content_type, "Docker-Content-Digest": sha(body)}
        respond(conn, 200, headers, b"" if request.method == "HEAD" else body)

    return handler


@pytest.mark.parametrize("media_type", [SCHEMA1, SCHEMA1_JSON])
def test_a_schema_1_manifest_is_refused_naming_its_media_type(servers: list[Server], media_type: str) -> None:
    server = serve(servers, serving(_schema1("v1"), media_type))
    with client_for(server) as client, pytest.raises(UnsupportedManifest) as refused:
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert media_type in str(refused.value)
    assert "schema 1" in str(refused.value)


def test_a_schema_1_document_behind_a_lying_content_type_is_refused(servers: list[Server]) -> None:
    # HEAD claims an OCI manifest; the bytes are schema 1: reading them (labels) finds out.
    server = serve(servers, serving(_schema1("v1"), OCI_MANIFEST))
    with client_for(server) as client, pytest.raises(UnsupportedManifest, match="schema 1"):
        client.labels(parse(f"{server.netloc}/shop/web@{sha(_schema1('v1'))}"))


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.oci.artifact.manifest.v1+json", "text/html", "application/vnd.cncf.helm.config.v1+json"],
)
def test_a_media_type_not_asked_for_is_refused(servers: list[Server], media_type: str) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": {"digest": sha(b"x")}}).encode()
    server = serve(servers, serving(body, media_type))
    with client_for(server) as client, pytest.raises(UnsupportedManifest) as refused:
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))
    assert media_type in str(refused.value)


# -- WWW-Authenticate: every malformed header is a registry error, never an exception ---------------------


@pytest.mark.parametrize(
    "header",
    [
        "Bearer =",
        "Bearer ==",
        'Bearer realm=""',
        "Bearer realm",
        "Bearer ,,,",
        'Bearer realm="http://[::1',
        'Bearer realm="https://x"," =',
        "=",
        '"',
        "Bearer realm=\x00",
        'Basic realm="a", Bearer =, Bearer realm',
    ],
)
def test_a_malformed_challenge_is_a_registry_error(servers: list[Server], header: str) -> None:
    server = serve(servers, lambda conn, request: respond(conn, 401, {"WWW-Authenticate": header}))
    with client_for(server, timeout_seconds=3) as client, pytest.raises(RegistryError):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))


def test_bearer_equals_reads_as_a_challenge_without_a_realm(servers: list[Server]) -> None:
    server = serve(servers, lambda conn, request: respond(conn, 401, {"WWW-Authenticate": "Bearer ="}))
    with client_for(server) as client, pytest.raises(RegistryError, match="without a usable challenge"):
        client.resolve(parse(f"{server.netloc}/shop/web:v1"))


_ALPHABET = string.ascii_letters + string.digits + ' =",;\\\t:/[]{}%\x7f\xe9'
_PIECES = ["Bearer", "Basic", "realm", "service", "scope", "=", '"', ",", " ", "\\", '="', '",', "https://r/t", ""]


def _garbled(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))


def test_the_challenge_parser_never_raises_on_garbled_headers() -> None:
    rng = random.Random(15)  # seeded: a failure names its input and reproduces
    for _ in range(20_000):
        values = [_garbled(rng) for _ in range(rng.randint(1, 3))]
        try:
            parsed = parse_challenges(values)
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"parse_challenges({values!r}) raised {type(exc).__name__}: {exc}") from None
        for scheme, params in parsed:
            assert scheme and scheme == scheme.lower()
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


_HEADER_NAMES = ["WWW-Authenticate", "Docker-Content-Digest", "Content-Type", "Location", "Retry-After"]
_HEADER_PIECES = [
    *_PIECES,
    "sha256:",
    "a" * 64,
    "application/vnd.oci.image.index.v1+json",
    "/v2/",
    "http://",
    "-1",
    "1e9",
]


def test_garbled_headers_in_every_reply_are_registry_errors_never_exceptions() -> None:
    """Seeded fuzz of the client's header handling: any mix of garbled auth, digest, type, redirect and
    retry headers, with statuses that make the client read them, ends as a result or a RegistryError."""
    rng = random.Random(1515)
    for _ in range(1500):
        status = rng.choice([200, 200, 401, 307, 429, 404, 500])
        headers = {
            name: "".join(rng.choice(_HEADER_PIECES) for _ in range(rng.randint(0, 6)))
            for name in rng.sample(_HEADER_NAMES, rng.randint(1, len(_HEADER_NAMES)))
        }
        body = rng.choice([b"", b"{}", b'{"schemaVersion": 2, "manifests": []}', b"\xff\xfe", b'{"token": "t"}'])

        def reply(
            request: httpx.Request, status: int = status, headers: dict[str, str] = headers, body: bytes = body
        ) -> httpx.Response:
            return httpx.Response(status, headers=headers, content=b"" if request.method == "HEAD" else body)

        client = RegistryClient(
            RegistrySettings(max_attempts=2, resolution_timeout_seconds=5),
            transport=httpx.MockTransport(reply),
            sleep=lambda _: None,
        )
        try:
            with client:
                ref = parse("registry.example.com/shop/web:v1")
                client.labels(ref.with_digest(client.resolve(ref).digest))
        except RegistryError:
            pass
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"{status} {headers!r}: {type(exc).__name__}: {exc}") from None
