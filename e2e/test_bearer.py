"""Bearer-token auth (how Docker Hub, GHCR and Harbor work) against the real distribution registry.

The registry runs with `auth: token` and verifies real RS256 JWTs; the token service is a small HTTP server
in this module that checks Basic credentials and signs tokens for the repositories they may pull, like
docker_auth would. The registry shares the plain registry's storage, so images pushed there are visible.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from apprelease.core.reference import parse
from apprelease.registry import Credential, RegistryClient, RegistrySettings, Unauthorized
from e2e.images import Pushed, bake
from e2e.releases import apply, container_images, deployment_manifest, release_manifest, wait_condition, wait_ready
from e2e.support import ROOT, Operator, Testbed, wait_until

SERVICE = "apprelease-testbed"
ISSUER = "apprelease-testbed-token-service"
USER, PASSWORD = "robot", "s3cret-token-pass"
REGISTRY_PORT, TOKEN_PORT = 5602, 5601


@dataclass
class TokenService:
    key: rsa.RSAPrivateKey
    cert_der: bytes
    issued: list[dict[str, Any]] = field(default_factory=list)

    def token(self, authorization: str | None, scope: str | None) -> tuple[int, dict[str, Any]]:
        user = None
        if authorization and authorization.startswith("Basic "):
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            if (name, password) != (USER, PASSWORD):
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
            user = name
        access = []
        if scope and user:  # anonymous callers get a token without access: the registry then says 401
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers = {"x5c": [base64.b64encode(self.cert_der).decode()]}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers=headers)
        self.issued.append(claims)
        return 200, {"token": token, "access_token": token, "expires_in": 300}


def _service(tmp: Path) -> tuple[TokenService, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    bundle = tmp / "token-ca.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TokenService(key, cert.public_bytes(serialization.Encoding.DER)), bundle


@dataclass
class BearerRegistry:
    host: str
    service: TokenService


@pytest.fixture(scope="module")
def bearer_registry(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BearerRegistry]:
    tmp = tmp_path_factory.mktemp("bearer")
    service, bundle = _service(tmp)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = parse_qs(urlparse(self.path).query)
            scopes = query.get("scope") or []
            status, body = service.token(self.headers.get("Authorization"), scopes[0] if scopes else None)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", TOKEN_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    storage = ROOT / ".testbed" / "registry-plain"
    config = tmp / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
        f"http: {{addr: 127.0.0.1:{REGISTRY_PORT}}}\n"
        f"auth: {{token: {{realm: 'http://127.0.0.1:{TOKEN_PORT}/token', service: {SERVICE}, issuer: {ISSUER}, "
        f"rootcertbundle: {bundle}}}}}\n"
    )
    log = (ROOT / ".testbed" / "logs" / "registry-bearer.log").open("ab")
    registry = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{REGISTRY_PORT}/v2/").status_code == 401,
            timeout=30,
            what="the Bearer-auth registry",
        )
        yield BearerRegistry(f"127.0.0.1:{REGISTRY_PORT}", service)
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        server.shutdown()


@pytest.fixture(scope="module")
def pushed(testbed: Testbed, app_repo: tuple[Path, dict[str, str]]) -> Pushed:
    return bake(app_repo, f"{testbed.registry}/e2e/bearer", "v1.0.0")


def test_bearer_challenge_token_and_digest(bearer_registry: BearerRegistry, pushed: Pushed) -> None:
    ref = parse(f"{bearer_registry.host}/e2e/bearer:v1.0.0")
    settings = RegistrySettings(insecure_registries=[bearer_registry.host])
    good = Credential.model_validate({"username": USER, "password": PASSWORD})
    with RegistryClient(settings) as registry:
        resolved = registry.resolve(ref, good, use_cache=False)
        assert resolved.digest == pushed.digest
        labels = registry.labels(ref.with_digest(resolved.digest), good)
        assert labels["org.opencontainers.image.version"] == "v1.0.0"
    granted = [c for c in bearer_registry.service.issued if c["access"]]
    assert granted and granted[-1]["access"] == [{"type": "repository", "name": "e2e/bearer", "actions": ["pull"]}]

    with RegistryClient(settings) as registry:
        with pytest.raises(Unauthorized) as wrong:
            registry.resolve(ref, Credential.model_validate({"username": USER, "password": "nope"}), use_cache=False)
        assert "nope" not in str(wrong.value)
        with pytest.raises(Unauthorized):
            registry.resolve(ref, None, use_cache=False)


def test_operator_pulls_through_a_bearer_registry_with_a_pull_secret(
    testbed: Testbed, operator: Operator, namespace: str, bearer_registry: BearerRegistry, pushed: Pushed
) -> None:
    # The session operator only trusts the test bed's plain registry over http; this one needs its own.
    operator.stop()
    bearer_operator = Operator(
        testbed,
        ROOT / ".testbed" / "logs" / "operator-bearer.log",
        extra_env={
            "APPRELEASE_INSECURE_REGISTRIES": f"{testbed.registry},{bearer_registry.host}",
            "APPRELEASE_ALLOWED_REGISTRIES": f"{testbed.registry},{bearer_registry.host}",
            "APPRELEASE_WATCH_NAMESPACES": namespace,
        },
    )
    bearer_operator.start()
    try:
        repository = f"{bearer_registry.host}/e2e/bearer"
        config = {"auths": {bearer_registry.host: {"username": USER, "password": PASSWORD}}}
        testbed.kubectl(
            "create",
            "secret",
            "generic",
            "robot",
            "-n",
            namespace,
            "--type=kubernetes.io/dockerconfigjson",
            f"--from-literal=.dockerconfigjson={json.dumps(config)}",
        )
        apply(testbed, deployment_manifest(namespace, "anon", {"web": f"{repository}:v0"}, release="anon"))
        apply(
            testbed, release_manifest(namespace, "anon", repository, "v1.0.0", [{"kind": "Deployment", "name": "anon"}])
        )
        wait_condition(testbed, namespace, "anon", "Ready", "False", "Unauthorized")
        assert container_images(testbed, namespace, "anon") == {"web": f"{repository}:v0"}

        apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v0"}, release="web"))
        apply(
            testbed,
            release_manifest(
                namespace,
                "web",
                repository,
                "v1.0.0",
                [{"kind": "Deployment", "name": "web"}],
                imagePullSecrets=[{"name": "robot"}],
            ),
        )
        wait_ready(testbed, namespace, "web", "v1.0.0")
        assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{pushed.digest}"}
        assert PASSWORD not in bearer_operator.log_path.read_text()
    finally:
        bearer_operator.stop()
        operator.start()
