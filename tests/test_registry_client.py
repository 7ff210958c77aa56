from __future__ import annotations

import base64
import hashlib
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from apprelease.core.reference import Reference, parse
from apprelease.registry import (
    Credential,
    RegistryClient,
    RegistryError,
    RegistrySettings,
    RegistryUnavailable,
    Resolved,
    TagNotFound,
    Unauthorized,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
EXPECTED_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
PASSWORD = "hunter2-Secret-Password"
TOKEN = "tok-Very-Secret-Bearer"
CREDENTIAL = Credential(username="alice", password=SecretStr(PASSWORD))
REF = parse("registry.example.com/shop/web:v1")
MANIFEST_URL = "https://registry.example.com/v2/shop/web/manifests/v1"

Handler = Callable[[httpx.Request], httpx.Response]


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    client: RegistryClient
    requests: list[httpx.Request]
    sleeps: list[float]
    clock: FakeClock


@dataclass
class Registry:
    """A tiny in-memory registry: manifests by tag/digest and blobs by digest."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def push_manifest(self, document: dict[str, Any], media_type: str, tag: str | None = None) -> str:
        content = json.dumps(document, indent=3).encode()  # odd formatting: digests are over exact bytes
        digest = sha(content)
        self.manifests[digest] = (content, media_type)
        if tag is not None:
            self.manifests[tag] = (content, media_type)
        return digest

    def push_blob(self, content: bytes) -> str:
        digest = sha(content)
        self.blobs[digest] = content
        return digest

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        kind, ident = parts[-2], parts[-1]
        if kind == "manifests" and ident in self.manifests:
            content, media_type = self.manifests[ident]
            headers = {"Content-Type": media_type, "Docker-Content-Digest": sha(content)}
            return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else content)
        if kind == "blobs" and ident in self.blobs:
            return httpx.Response(200, content=self.blobs[ident])
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})


def harness(handler: Handler, **settings: Any) -> Harness:
    requests: list[httpx.Request] = []
    sleeps: list[float] = []
    clock = FakeClock()

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    client = RegistryClient(
        RegistrySettings(**settings),
        transport=httpx.MockTransport(record),
        sleep=sleeps.append,
        clock=clock,
    )
    return Harness(client, requests, sleeps, clock)


def manifest_head(digest: str, media_type: str = OCI_INDEX) -> httpx.Response:
    return httpx.Response(200, headers={"Docker-Content-Digest": digest, "Content-Type": media_type})


INDEX_DIGEST = "sha256:" + "1" * 64


# -- resolve: HEAD, GET fallback, verification ---------------------------------------------


def test_head_sends_the_four_accept_types_and_returns_the_index_digest() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST))
    resolved = h.client.resolve(REF)
    assert resolved == Resolved(
        reference=Reference("registry.example.com", "shop/web", "v1", None),
        digest=INDEX_DIGEST,
        media_type=OCI_INDEX,
    )
    assert resolved.pinned == f"registry.example.com/shop/web@{INDEX_DIGEST}"
    [request] = h.requests
    assert request.method == "HEAD"
    assert str(request.url) == MANIFEST_URL
    assert request.headers["Accept"] == EXPECTED_ACCEPT
    assert "Authorization" not in request.headers  # anonymous first


def test_docker_hub_goes_to_registry_1() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST))
    h.client.resolve(parse("nginx:1.27"))
    assert str(h.requests[0].url) == "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"


def test_resolve_requires_a_tag() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST))
    with pytest.raises(ValueError, match="has no tag"):
        h.client.resolve(parse("registry.example.com/shop/web@" + INDEX_DIGEST))
    assert h.requests == []


@pytest.mark.parametrize("head_status", [200, 405])
def test_get_fallback_hashes_the_exact_bytes(head_status: int) -> None:
    body = b'{"schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.manifest.v1+json"}  \n'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(head_status, headers={"Content-Type": OCI_MANIFEST})
        return httpx.Response(200, headers={"Content-Type": OCI_MANIFEST}, content=body)

    h = harness(handler)
    resolved = h.client.resolve(REF)
    assert resolved.digest == sha(body)
    assert resolved.media_type == OCI_MANIFEST
    assert [r.method for r in h.requests] == ["HEAD", "GET"]
    assert h.requests[1].headers["Accept"] == EXPECTED_ACCEPT


def test_get_verifies_docker_content_digest() -> None:
    body = b'{"schemaVersion": 2}'
    claimed = "sha256:" + "f" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(200, headers={"Docker-Content-Digest": claimed}, content=body)

    h = harness(handler)
    with pytest.raises(RegistryUnavailable, match="digest verification failed") as info:
        h.client.resolve(REF)
    assert claimed in str(info.value) and sha(body) in str(info.value)


def test_get_with_matching_digest_header_is_accepted() -> None:
    body = b'{"schemaVersion": 2, "mediaType": "%s"}' % DOCKER_MANIFEST.encode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(405)
        return httpx.Response(200, headers={"Docker-Content-Digest": sha(body)}, content=body)

    resolved = harness(handler).client.resolve(REF)
    assert resolved.digest == sha(body)
    assert resolved.media_type == DOCKER_MANIFEST  # from the body when Content-Type is missing


def test_manifest_size_limit_by_content_length() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(200, content=b"x" * 101)

    with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
        harness(handler, max_manifest_bytes=100).client.resolve(REF)


def test_manifest_size_limit_by_streamed_size() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 10

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)
        response = httpx.Response(200, content=chunks())
        assert "content-length" not in response.headers
        return response

    with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
        harness(handler, max_manifest_bytes=100).client.resolve(REF)


# -- auth ----------------------------------------------------------------------------------------


def test_basic_challenge_retries_with_basic_auth_and_remembers_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != basic("alice", PASSWORD):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})
        return manifest_head(INDEX_DIGEST)

    h = harness(handler)
    assert h.client.resolve(REF, CREDENTIAL).digest == INDEX_DIGEST
    assert [r.headers.get("Authorization") for r in h.requests] == [None, basic("alice", PASSWORD)]
    h.client.resolve(REF, CREDENTIAL, use_cache=False)
    assert len(h.requests) == 3  # the known challenge is answered up front


def test_basic_challenge_without_credentials_is_unauthorized() -> None:
    h = harness(lambda request: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    with pytest.raises(Unauthorized, match="no credentials were supplied"):
        h.client.resolve(REF)


def bearer_registry(
    realm: str, token_calls: list[httpx.Request], *, expires_in: int | None = 300, require: str | None = None
) -> Handler:
    """Registry accepting only `Bearer TOKEN`; its token service hands that out (checking `require`)."""
    realm_netloc = httpx.URL(realm).netloc

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.netloc == realm_netloc:
            token_calls.append(request)
            if require is not None and request.headers.get("Authorization") != require:
                return httpx.Response(401)
            body: dict[str, Any] = {"token": TOKEN}
            if expires_in is not None:
                body["expires_in"] = expires_in
            return httpx.Response(200, json=body)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{realm}",service="registry.example.com",scope="repository:shop/web:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return manifest_head(INDEX_DIGEST)

    return handler


def test_bearer_challenge_fetches_token_and_reuses_it() -> None:
    token_calls: list[httpx.Request] = []
    realm = "https://auth.example.com/token"
    h = harness(bearer_registry(realm, token_calls, require=basic("alice", PASSWORD)))

    assert h.client.resolve(REF, CREDENTIAL).digest == INDEX_DIGEST
    [token_request] = token_calls
    assert token_request.method == "GET"
    assert token_request.url.host == "auth.example.com"
    query = parse_qs(token_request.url.query.decode())
    assert query == {"service": ["registry.example.com"], "scope": ["repository:shop/web:pull"]}
    assert h.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(h.requests) == 3  # anonymous HEAD, token, authorised HEAD

    h.client.resolve(REF, CREDENTIAL, use_cache=False)
    assert len(token_calls) == 1  # cached token reused
    assert len(h.requests) == 4  # and sent up front, no second challenge
    assert h.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"

    h.clock.now += 301  # the token has expired
    h.client.resolve(REF, CREDENTIAL, use_cache=False)
    assert len(token_calls) == 2


def test_bearer_anonymous_token_for_public_images() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("https://auth.example.com/token", token_calls, expires_in=None))
    assert h.client.resolve(REF).digest == INDEX_DIGEST
    assert "Authorization" not in token_calls[0].headers


def test_tokens_are_not_shared_between_credentials() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("https://auth.example.com/token", token_calls))
    h.client.resolve(REF, CREDENTIAL)
    h.client.resolve(REF)  # anonymous caller must not ride on alice's token
    assert len(token_calls) == 2
    assert "Authorization" not in token_calls[1].headers


def test_a_refused_cached_token_is_replaced() -> None:
    token_calls: list[httpx.Request] = []
    tokens = iter(["tok-a", "tok-b"])
    accepted = {"tok-a"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            token_calls.append(request)
            return httpx.Response(200, json={"token": next(tokens), "expires_in": 300})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in accepted:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/t"'})
        return manifest_head(INDEX_DIGEST)

    h = harness(handler)
    h.client.resolve(REF, CREDENTIAL)
    accepted = {"tok-b"}  # the registry revokes tok-a before it expires
    assert h.client.resolve(REF, CREDENTIAL, use_cache=False).digest == INDEX_DIGEST
    assert len(token_calls) == 2
    registry_requests = [r for r in h.requests if r.url.host == "registry.example.com"]
    assert [r.headers.get("Authorization") for r in registry_requests] == [
        None,
        "Bearer tok-a",
        "Bearer tok-a",  # sent up front, refused
        "Bearer tok-b",
    ]


def test_identity_token_uses_refresh_token_grant() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("https://auth.example.com/token", token_calls))
    credential = Credential(identity_token=SecretStr("refresh-Secret"))
    assert h.client.resolve(REF, credential).digest == INDEX_DIGEST
    [token_request] = token_calls
    assert token_request.method == "POST"
    form = parse_qs(token_request.content.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-Secret"]
    assert form["scope"] == ["repository:shop/web:pull"]
    assert form["service"] == ["registry.example.com"]


def test_non_https_realm_is_refused() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("http://auth.example.com/token", token_calls))
    with pytest.raises(RegistryUnavailable, match="token realm must use https"):
        h.client.resolve(REF, CREDENTIAL)
    assert token_calls == []


@pytest.mark.parametrize(
    "realm", ["http://127.0.0.1:5001/token", "http://localhost:5001/auth", "http://[::1]:5001/token"]
)
def test_loopback_http_realm_is_accepted_for_a_loopback_registry_only(realm: str) -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry(realm, token_calls))
    assert h.client.resolve(parse("127.0.0.1:5443/shop/web:v1"), CREDENTIAL).digest == INDEX_DIGEST
    assert len(token_calls) == 1
    # A registry elsewhere must not make the operator call (and send credentials to) its own loopback.
    with pytest.raises(RegistryUnavailable, match="token realm must use https"):
        h.client.resolve(REF, CREDENTIAL)
    assert len(token_calls) == 1


@pytest.mark.parametrize("realm", ["https://169.254.169.254/token", "https://[fe80::1]/token", "https://0.0.0.0/t"])
def test_link_local_and_unspecified_realms_are_refused(realm: str) -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry(realm, token_calls))
    with pytest.raises(RegistryUnavailable, match="token realm must use https"):
        h.client.resolve(parse("127.0.0.1:5443/shop/web:v1"), CREDENTIAL)
    assert token_calls == []


def test_unauthorized_after_auth_never_reveals_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            return httpx.Response(200, json={"token": TOKEN})
        challenge = 'Bearer realm="https://auth.example.com/token",service="registry.example.com"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    h = harness(handler)
    with pytest.raises(Unauthorized) as info:
        h.client.resolve(REF, CREDENTIAL)
    message = str(info.value)
    assert "registry.example.com" in message
    assert "registry.example.com/shop/web" in message
    assert "credentials were supplied" in message
    assert h.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"  # auth really was tried
    encoded = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for text in [message, repr(info.value), *(r.getMessage() for r in caplog.records)]:
        assert PASSWORD not in text
        assert encoded not in text
        assert TOKEN not in text


def test_basic_rejected_credentials_are_unauthorized(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness(lambda request: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    with pytest.raises(Unauthorized) as info:
        h.client.resolve(REF, CREDENTIAL)
    assert "credentials were supplied" in str(info.value)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert PASSWORD not in str(info.value)


def test_forbidden_is_unauthorized() -> None:
    h = harness(lambda request: httpx.Response(403))
    with pytest.raises(Unauthorized, match="HTTP 403"):
        h.client.resolve(REF)


def test_token_service_rejection_is_unauthorized() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("https://auth.example.com/token", token_calls, require="Basic nope"))
    with pytest.raises(Unauthorized) as info:
        h.client.resolve(REF, CREDENTIAL)
    assert PASSWORD not in str(info.value)


# -- errors and retries --------------------------------------------------------------------------


def test_404_is_tag_not_found() -> None:
    h = harness(lambda request: httpx.Response(404))
    with pytest.raises(TagNotFound) as info:
        h.client.resolve(REF)
    assert str(info.value) == "tag 'v1' not found in registry.example.com/shop/web"


def test_other_4xx_is_a_plain_registry_error() -> None:
    h = harness(lambda request: httpx.Response(400, json={"errors": [{"code": "TAG_INVALID", "message": "?"}]}))
    with pytest.raises(RegistryError) as info:
        h.client.resolve(REF)
    assert type(info.value) is RegistryError
    assert "HTTP 400" in str(info.value) and "TAG_INVALID" in str(info.value)


def test_429_honours_retry_after_capped() -> None:
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(429, headers={"Retry-After": "120"}),
            manifest_head(INDEX_DIGEST),
        ]
    )
    h = harness(
        lambda request: next(responses),
        max_attempts=3,
        max_retry_after_seconds=30,
        timeout_seconds=60,
        resolution_timeout_seconds=60,
    )
    assert h.client.resolve(REF).digest == INDEX_DIGEST
    assert h.sleeps == [7.0, 30.0]
    assert len(h.requests) == 3


def test_429_asking_to_wait_past_the_deadline_fails_now() -> None:
    h = harness(lambda request: httpx.Response(429, headers={"Retry-After": "20"}), timeout_seconds=10)
    with pytest.raises(RegistryUnavailable, match="past the deadline"):
        h.client.resolve(REF)
    assert h.sleeps == []
    assert len(h.requests) == 1


def test_429_exhausted_is_unavailable() -> None:
    h = harness(lambda request: httpx.Response(429, headers={"Retry-After": "1"}), max_attempts=2)
    with pytest.raises(RegistryUnavailable, match="rate limiting"):
        h.client.resolve(REF)
    assert h.sleeps == [1.0]
    assert len(h.requests) == 2


def test_5xx_is_retried_then_unavailable() -> None:
    h = harness(lambda request: httpx.Response(503))
    with pytest.raises(RegistryUnavailable, match="HTTP 503 after 3 attempt"):
        h.client.resolve(REF)
    # A HEAD's 5xx is not retried: one GET decides, and that GET is retried.
    assert [r.method for r in h.requests] == ["HEAD", "GET", "GET", "GET"]
    assert len(h.sleeps) == 2 and all(0 < s <= 5 for s in h.sleeps)


def test_5xx_then_success() -> None:
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}'
    responses = iter(
        [
            httpx.Response(502),
            httpx.Response(502),
            httpx.Response(200, headers={"Content-Type": OCI_INDEX}, content=body),
        ]
    )
    h = harness(lambda request: next(responses))
    assert h.client.resolve(REF).digest == sha(body)
    assert [r.method for r in h.requests] == ["HEAD", "GET", "GET"]
    assert len(h.sleeps) == 1


def test_connection_errors_are_retried_then_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    h = harness(handler)
    with pytest.raises(RegistryUnavailable) as info:
        h.client.resolve(REF)
    assert str(info.value) == "registry registry.example.com unreachable or not a registry"
    assert len(h.requests) == 3
    assert len(h.sleeps) == 2


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout])
def test_timeouts_are_not_retried_within_the_deadline(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("timed out", request=request)

    h = harness(handler)
    with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
        h.client.resolve(REF)
    assert len(h.requests) == 1


def test_bad_tls_is_unavailable_without_retrying() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
        except ssl.SSLError as exc:
            raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=request) from exc

    h = harness(handler)
    with pytest.raises(RegistryUnavailable, match="unreachable or not a registry"):
        h.client.resolve(REF)
    assert len(h.requests) == 1


# -- cache -------------------------------------------------------------------------------------


def test_cache_hit_then_ttl_expiry() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST), cache_ttl_seconds=60)
    first = h.client.resolve(REF)
    assert h.client.resolve(REF) == first
    assert len(h.requests) == 1
    h.clock.now += 59
    h.client.resolve(REF)
    assert len(h.requests) == 1
    h.clock.now += 2
    h.client.resolve(REF)
    assert len(h.requests) == 2


def test_use_cache_false_bypasses_but_stores() -> None:
    digests = iter(["sha256:" + "a" * 64, "sha256:" + "b" * 64])
    h = harness(lambda request: manifest_head(next(digests)))
    assert h.client.resolve(REF).digest == "sha256:" + "a" * 64
    assert h.client.resolve(REF, use_cache=False).digest == "sha256:" + "b" * 64
    assert h.client.resolve(REF).digest == "sha256:" + "b" * 64
    assert len(h.requests) == 2


def test_failures_are_not_cached() -> None:
    responses = iter([httpx.Response(404), httpx.Response(404), manifest_head(INDEX_DIGEST)])
    h = harness(lambda request: next(responses))
    with pytest.raises(TagNotFound):
        h.client.resolve(REF)
    assert h.client.resolve(REF).digest == INDEX_DIGEST


def test_cache_is_keyed_by_tag() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST))
    h.client.resolve(REF)
    h.client.resolve(REF.with_tag("v2"))
    assert len(h.requests) == 2


# -- base URL ------------------------------------------------------------------------------------


def test_insecure_registries_use_http_and_others_https() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST), insecure_registries=["127.0.0.1:5000"])
    h.client.resolve(parse("127.0.0.1:5000/shop/web:v1"))
    h.client.resolve(parse("127.0.0.1:5443/shop/web:v1"))
    assert str(h.requests[0].url) == "http://127.0.0.1:5000/v2/shop/web/manifests/v1"
    assert str(h.requests[1].url) == "https://127.0.0.1:5443/v2/shop/web/manifests/v1"


# -- labels --------------------------------------------------------------------------------------


def multi_arch_registry(labels: dict[str, str] | None) -> tuple[Registry, str, str]:
    registry = Registry()
    config_amd64: dict[str, Any] = {"architecture": "amd64", "os": "linux", "config": {}}
    if labels is not None:
        config_amd64["config"]["Labels"] = labels
    amd64_config = registry.push_blob(json.dumps(config_amd64).encode())
    arm_config = registry.push_blob(json.dumps({"config": {"Labels": {"arch": "arm64"}}}).encode())

    def image(config_digest: str) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest},
            "layers": [],
        }

    arm = registry.push_manifest(image(arm_config), OCI_MANIFEST)
    amd = registry.push_manifest(image(amd64_config), OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"digest": arm, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": amd, "mediaType": OCI_MANIFEST, "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    index_digest = registry.push_manifest(index, OCI_INDEX, tag="v1")
    return registry, index_digest, amd64_config


def test_labels_through_an_index_to_the_amd64_child_config() -> None:
    registry, index_digest, amd64_config = multi_arch_registry({"org.opencontainers.image.version": "v1"})
    h = harness(registry)
    resolved = h.client.resolve(REF)
    assert resolved.digest == index_digest
    labels = h.client.labels(REF.with_digest(resolved.digest))
    assert labels == {"org.opencontainers.image.version": "v1"}
    paths = [r.url.path for r in h.requests[1:]]
    assert paths[0] == f"/v2/shop/web/manifests/{index_digest}"
    assert paths[-1] == f"/v2/shop/web/blobs/{amd64_config}"
    assert all(r.method == "GET" for r in h.requests[1:])


def test_labels_by_tag_and_without_labels() -> None:
    registry, _, _ = multi_arch_registry(None)
    assert harness(registry).client.labels(REF) == {}


def test_labels_use_the_first_child_without_amd64() -> None:
    registry = Registry()
    config = registry.push_blob(b'{"config": {"Labels": {"a": "b"}}}')
    child = registry.push_manifest({"schemaVersion": 2, "config": {"digest": config}}, DOCKER_MANIFEST)
    index = {"manifests": [{"digest": child, "platform": {"os": "linux", "architecture": "s390x"}}]}
    registry.push_manifest(index, "application/vnd.docker.distribution.manifest.list.v2+json", tag="v1")
    assert harness(registry).client.labels(REF) == {"a": "b"}


def test_labels_through_nested_indexes() -> None:
    registry = Registry()
    config = registry.push_blob(b'{"config": {"Labels": {"deep": "yes"}}}')
    image = registry.push_manifest({"schemaVersion": 2, "config": {"digest": config}}, OCI_MANIFEST)
    digest = image
    for _ in range(3):
        index = {"mediaType": OCI_INDEX, "manifests": [{"digest": digest}]}
        digest = registry.push_manifest(index, OCI_INDEX)
    assert harness(registry).client.labels(REF.with_digest(digest)) == {"deep": "yes"}

    too_deep = registry.push_manifest({"mediaType": OCI_INDEX, "manifests": [{"digest": digest}]}, OCI_INDEX)
    with pytest.raises(RegistryError, match="nests more than"):
        harness(registry).client.labels(REF.with_digest(too_deep))


def test_labels_verify_the_requested_digest() -> None:
    registry, index_digest, _ = multi_arch_registry({"a": "b"})
    content, media_type = registry.manifests[index_digest]
    registry.manifests[index_digest] = (content + b" ", media_type)  # tampered, header recomputed
    with pytest.raises(RegistryUnavailable, match="digest verification failed"):
        harness(registry).client.labels(REF.with_digest(index_digest))


def test_labels_config_blob_follows_redirect_and_is_verified() -> None:
    registry, index_digest, amd64_config = multi_arch_registry({"a": "b"})
    blob = registry.blobs[amd64_config]
    cdn_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.com":
            cdn_requests.append(request)
            return httpx.Response(200, content=blob)
        if "/blobs/" in request.url.path:
            return httpx.Response(307, headers={"Location": "https://cdn.example.com/b?sig=1"})
        return registry(request)

    assert harness(handler).client.labels(REF.with_digest(index_digest)) == {"a": "b"}
    assert len(cdn_requests) == 1

    registry.blobs[amd64_config] = blob + b"\n"
    blob = blob + b"\n"
    with pytest.raises(RegistryUnavailable, match="digest verification failed for config blob"):
        harness(handler).client.labels(REF.with_digest(index_digest))


def test_labels_with_basic_auth_do_not_leak_authorization_to_a_cdn() -> None:
    registry, index_digest, amd64_config = multi_arch_registry({"a": "b"})
    cdn_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.com":
            cdn_requests.append(request)
            return httpx.Response(200, content=registry.blobs[amd64_config])
        if request.headers.get("Authorization") != basic("alice", PASSWORD):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if "/blobs/" in request.url.path:
            return httpx.Response(307, headers={"Location": "https://cdn.example.com/b"})
        return registry(request)

    assert harness(handler).client.labels(REF.with_digest(index_digest), CREDENTIAL) == {"a": "b"}
    assert "Authorization" not in cdn_requests[0].headers


def test_labels_requires_tag_or_digest() -> None:
    with pytest.raises(ValueError):
        harness(Registry()).client.labels(parse("registry.example.com/shop/web"))


# -- concurrency and lifecycle -------------------------------------------------------------------


def test_concurrent_resolves_share_one_client() -> None:
    token_calls: list[httpx.Request] = []
    h = harness(bearer_registry("https://auth.example.com/token", token_calls))
    results: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(h.client.resolve(REF.with_tag(f"v{i}"), CREDENTIAL).digest)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [INDEX_DIGEST] * 16


def test_context_manager_closes_the_http_client() -> None:
    with harness(lambda request: manifest_head(INDEX_DIGEST)).client as client:
        client.resolve(REF)
    with pytest.raises(RuntimeError):
        client.resolve(REF, use_cache=False)


def test_max_age_reuses_a_resolution_older_than_the_cache_period() -> None:
    h = harness(lambda request: manifest_head(INDEX_DIGEST), cache_ttl_seconds=60)
    h.client.resolve(REF)
    h.clock.now += 200
    assert h.client.resolve(REF, max_age=270).digest == INDEX_DIGEST
    assert len(h.requests) == 1
    h.client.resolve(REF)  # past the cache period for everyone else
    assert len(h.requests) == 2
    h.clock.now += 271
    h.client.resolve(REF, max_age=270)
    assert len(h.requests) == 3
