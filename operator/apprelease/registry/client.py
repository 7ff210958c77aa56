"""Minimal OCI distribution API client: resolve tags to digests and read image labels.

It talks HTTP(S) to the registry directly (never the Docker daemon) because the
operator runs in a cluster without one. It is called from worker threads, so the
shared caches are guarded by a lock; ``httpx.Client`` itself is thread-safe.

Credentials and tokens are only ever placed in request headers or bodies: log
records and exception messages name registries, repositories and HTTP statuses,
never secrets.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import certifi
import httpx
from pydantic import BaseModel, Field, SecretStr

from ..reference import Reference, is_valid_digest, registry_api_host
from .credentials import Credential

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "RegistryClient",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "Resolved",
    "TagNotFound",
    "Unauthorized",
]

logger = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

# Index types come first so that a multi-arch tag resolves to its index digest,
# which is what lets every node pull its own architecture from one pinned reference.
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
_MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

_MAX_CONFIG_BYTES = 8 * 1024 * 1024
_MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
# Error bodies are only read for the registry's error code; anything longer is noise.
_MAX_ERROR_BODY_BYTES = 64 * 1024
_MAX_INDEX_DEPTH = 3
_DEFAULT_TOKEN_TTL = 60.0
_MAX_CACHE_ENTRIES = 4096
_CLIENT_ID = "apprelease"


class RegistrySettings(BaseModel):
    insecure_registries: list[str] = Field(default_factory=list)
    ca_bundle: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    cache_ttl_seconds: float = Field(default=60.0, ge=0)
    max_retry_after_seconds: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)


class RegistryError(Exception):
    """Base class; the message is safe to show to users."""


class RegistryUnavailable(RegistryError):
    """The registry could not be used right now (network, TLS, 5xx, 429) or sent untrustworthy data."""


class Unauthorized(RegistryError):
    """The registry refused access (401/403) after any available credentials were tried."""


class TagNotFound(RegistryError):
    """The tag (or manifest) does not exist in the repository."""


@dataclass(frozen=True)
class Resolved:
    reference: Reference
    digest: str
    media_type: str

    @property
    def pinned(self) -> str:
        return f"{self.reference.repository}@{self.digest}"


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: httpx.Headers
    content: bytes

    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";", 1)[0].strip()


@dataclass(frozen=True)
class _Challenge:
    scheme: str  # "basic" or "bearer"
    realm: str
    service: str | None


@dataclass(frozen=True)
class _Target:
    """The repository being accessed: where to send requests and what to call it in messages."""

    domain: str
    path: str
    base_url: str

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def scope(self) -> str:
        return f"repository:{self.path}:pull"

    def url(self, kind: str, reference: str) -> str:
        return f"{self.base_url}/v2/{self.path}/{kind}/{reference}"


_TokenKey = tuple[str, str, str, str]  # realm, service, scope, credential fingerprint
_CacheKey = tuple[str, str, str]  # repository, tag, credential fingerprint


def _secret(value: SecretStr | None) -> str:
    return str(value.get_secret_value()) if value is not None else ""


def _effective(credential: Credential | None) -> Credential | None:
    if credential is None:
        return None
    if credential.username is None and credential.password is None and credential.identity_token is None:
        return None
    return credential


def _fingerprint(credential: Credential | None) -> str:
    """A one-way identity for a credential, so caches never serve one caller's
    authorised results (or tokens) to a caller with different or no credentials."""
    if credential is None:
        return ""
    digest = hashlib.sha256()
    for part in (credential.username or "", _secret(credential.password), _secret(credential.identity_token)):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def _basic_authorization(credential: Credential | None) -> str | None:
    if credential is None or (credential.username is None and credential.password is None):
        return None
    raw = f"{credential.username or ''}:{_secret(credential.password)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Parse ``WWW-Authenticate`` values (RFC 7235 auth-params; token68 is not used by registries)."""
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in values:
        pos, end = 0, len(value)
        while pos < end:
            while pos < end and value[pos] in " \t,":
                pos += 1
            start = pos
            while pos < end and value[pos] in _TOKEN_CHARS:
                pos += 1
            if pos == start:
                pos += 1  # skip a stray character rather than loop forever
                continue
            word = value[start:pos]
            look = pos
            while look < end and value[look] in " \t":
                look += 1
            if look < end and value[look] == "=" and challenges:
                pos = look + 1
                while pos < end and value[pos] in " \t":
                    pos += 1
                if pos < end and value[pos] == '"':
                    pos += 1
                    chars: list[str] = []
                    while pos < end and value[pos] != '"':
                        if value[pos] == "\\" and pos + 1 < end:
                            pos += 1
                        chars.append(value[pos])
                        pos += 1
                    pos += 1
                    param = "".join(chars)
                else:
                    start = pos
                    while pos < end and value[pos] not in " \t,":
                        pos += 1
                    param = value[start:pos]
                challenges[-1][1][word.lower()] = param
            else:
                challenges.append((word.lower(), {}))
    return challenges


def _pick_challenge(headers: httpx.Headers) -> _Challenge | None:
    parsed = _parse_challenges(headers.get_list("www-authenticate"))
    for wanted in ("bearer", "basic"):
        for scheme, params in parsed:
            if scheme != wanted:
                continue
            realm = params.get("realm", "")
            if scheme == "bearer" and not realm:
                continue
            return _Challenge(scheme=scheme, realm=realm, service=params.get("service"))
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _bound(cache: dict[Any, tuple[Any, float]], now: float) -> None:
    """Keep a cache below _MAX_CACHE_ENTRIES: drop expired entries, then the oldest.

    A long-running operator sees an open-ended set of repositories, tags and
    credentials, so without this the caches would only ever grow."""
    if len(cache) < _MAX_CACHE_ENTRIES:
        return
    for key in [k for k, (_, expires_at) in cache.items() if expires_at <= now]:
        del cache[key]
    while len(cache) >= _MAX_CACHE_ENTRIES:
        del cache[next(iter(cache))]


def _hash(algorithm: str, content: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


def _error_codes(content: bytes) -> list[str]:
    """Registry error codes (e.g. MANIFEST_UNKNOWN) from an error body; only codes, since
    free-text messages are echoed to users and are not under our control."""
    try:
        document = json.loads(content)
    except ValueError:
        return []
    if not isinstance(document, dict) or not isinstance(document.get("errors"), list):
        return []
    codes: list[str] = []
    for error in document["errors"]:
        if isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"].isupper():
            codes.append(error["code"][:64])
    return codes


def _load_json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError:
        raise RegistryError(f"{what} is not valid JSON") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return document


class RegistryClient:
    """Synchronous, thread-safe client for the parts of the OCI distribution API the operator needs."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings or RegistrySettings()
        self._sleep = sleep
        self._clock = clock
        self._insecure = {self._normalize_host(h) for h in self._settings.insecure_registries}
        self._lock = threading.Lock()
        self._resolved: dict[_CacheKey, tuple[Resolved, float]] = {}
        self._tokens: dict[_TokenKey, tuple[str, float]] = {}
        self._challenges: dict[str, _Challenge] = {}
        verify: ssl.SSLContext | bool = True
        if transport is None and self._settings.ca_bundle:
            verify = self._ssl_context(self._settings.ca_bundle)
        self._http = httpx.Client(
            transport=transport,
            verify=verify,
            timeout=self._settings.timeout_seconds,
            follow_redirects=True,
            headers={"User-Agent": _CLIENT_ID},
        )

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API ----------------------------------------------------------------

    def resolve(self, ref: Reference, credential: Credential | None = None, *, use_cache: bool = True) -> Resolved:
        """Resolve ``ref``'s tag to the digest the registry serves for it now."""
        if ref.tag is None:
            raise ValueError(f"cannot resolve {ref}: the reference has no tag")
        credential = _effective(credential)
        key: _CacheKey = (ref.repository, ref.tag, _fingerprint(credential))
        if use_cache:
            with self._lock:
                cached = self._resolved.get(key)
                if cached is not None and self._clock() < cached[1]:
                    return cached[0]

        target = self._target(ref)
        url = target.url("manifests", ref.tag)
        subject = f"tag {ref.tag!r}"
        digest: str | None = None
        media_type = ""
        head = self._request("HEAD", url, target, credential, accept=_MANIFEST_ACCEPT, limit=0)
        if head.status == 200:
            header = head.headers.get("docker-content-digest", "")
            media_type = head.content_type()
            # Without a digest (or a media type) HEAD cannot answer the question, so ask with GET.
            if is_valid_digest(header) and media_type:
                digest = header
        elif head.status != 405:
            self._raise_for_status(head, target, subject, TagNotFound)

        if digest is None:
            reply, digest = self._fetch_manifest(target, ref.tag, None, credential, subject, f"manifest for {subject}")
            media_type = reply.content_type() or self._declared_media_type(reply.content)

        resolved = Resolved(
            reference=Reference(domain=ref.domain, path=ref.path, tag=ref.tag),
            digest=digest,
            media_type=media_type,
        )
        self._store(key, resolved)
        return resolved

    def labels(self, ref: Reference, credential: Credential | None = None) -> dict[str, str]:
        """Labels of the image's config (for an index: the linux/amd64 child, else the first)."""
        identifier = ref.digest or ref.tag
        if identifier is None:
            raise ValueError(f"cannot read labels of {ref}: the reference has neither a digest nor a tag")
        credential = _effective(credential)
        target = self._target(ref)

        manifest, media_type = self._manifest(target, identifier, ref.digest, credential)
        for _ in range(_MAX_INDEX_DEPTH):
            if not self._is_index(manifest, media_type):
                break
            child = self._pick_child(manifest, target)
            manifest, media_type = self._manifest(target, child, child, credential)
        if self._is_index(manifest, media_type):
            raise RegistryError(f"image index for {ref} nests more than {_MAX_INDEX_DEPTH} levels deep")

        config = manifest.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not is_valid_digest(config_digest):
            raise RegistryError(f"manifest of {ref} has no usable config digest (unsupported manifest type?)")

        subject = f"config blob {config_digest}"
        reply = self._request(
            "GET",
            target.url("blobs", config_digest),
            target,
            credential,
            accept=None,
            limit=_MAX_CONFIG_BYTES,
        )
        if reply.status != 200:
            self._raise_for_status(reply, target, subject, RegistryError)
        self._verify(reply, config_digest, target, subject)
        document = _load_json_object(reply.content, f"{subject} of {target.repository}")
        image_config = document.get("config")
        raw_labels = image_config.get("Labels") if isinstance(image_config, dict) else None
        if not isinstance(raw_labels, dict):
            return {}
        return {k: v for k, v in raw_labels.items() if isinstance(k, str) and isinstance(v, str)}

    # -- manifests -----------------------------------------------------------------

    def _manifest(
        self, target: _Target, identifier: str, expected: str | None, credential: Credential | None
    ) -> tuple[dict[str, Any], str]:
        subject = f"manifest {identifier}" if expected else f"tag {identifier!r}"
        reply, _ = self._fetch_manifest(target, identifier, expected, credential, subject, subject)
        document = _load_json_object(reply.content, f"{subject} of {target.repository}")
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) and declared else reply.content_type()
        return document, media_type

    def _fetch_manifest(
        self,
        target: _Target,
        identifier: str,
        expected: str | None,
        credential: Credential | None,
        subject: str,
        verified_as: str,
    ) -> tuple[_Reply, str]:
        """GET a manifest within the size limit and verify its bytes; returns the reply and its digest."""
        reply = self._request(
            "GET",
            target.url("manifests", identifier),
            target,
            credential,
            accept=_MANIFEST_ACCEPT,
            limit=self._settings.max_manifest_bytes,
        )
        if reply.status != 200:
            self._raise_for_status(reply, target, subject, TagNotFound)
        return reply, self._verify(reply, expected, target, verified_as)

    @staticmethod
    def _declared_media_type(content: bytes) -> str:
        try:
            document = json.loads(content)
        except ValueError:
            return ""
        declared = document.get("mediaType") if isinstance(document, dict) else None
        return declared if isinstance(declared, str) else ""

    @staticmethod
    def _is_index(manifest: Mapping[str, Any], media_type: str) -> bool:
        if media_type in _INDEX_MEDIA_TYPES:
            return True
        return isinstance(manifest.get("manifests"), list) and "config" not in manifest

    @staticmethod
    def _pick_child(index: Mapping[str, Any], target: _Target) -> str:
        children = [c for c in index.get("manifests") or [] if isinstance(c, dict)]
        usable = [c for c in children if isinstance(c.get("digest"), str) and is_valid_digest(c["digest"])]
        if not usable:
            raise RegistryError(f"image index in {target.repository} lists no usable manifests")

        def platform(child: Mapping[str, Any]) -> tuple[Any, Any]:
            p = child.get("platform")
            return (p.get("os"), p.get("architecture")) if isinstance(p, dict) else (None, None)

        for child in usable:
            if platform(child) == ("linux", "amd64"):
                return str(child["digest"])
        # Attestation manifests (buildx provenance/SBOM) are marked unknown/unknown; they
        # carry no image config worth reading.
        for child in usable:
            if platform(child) != ("unknown", "unknown"):
                return str(child["digest"])
        return str(usable[0]["digest"])

    def _verify(self, reply: _Reply, expected: str | None, target: _Target, subject: str) -> str:
        """Check the body against the digest we asked for and the one the registry claims;
        return the content's digest."""
        header = reply.headers.get("docker-content-digest")
        if header is not None and not is_valid_digest(header):
            raise RegistryUnavailable(
                f"registry {target.domain} sent an invalid Docker-Content-Digest for {subject} in {target.repository}"
            )
        for claimed, source in ((expected, "requested"), (header, "Docker-Content-Digest")):
            if claimed is None:
                continue
            actual = _hash(claimed.split(":", 1)[0], reply.content)
            if actual != claimed:
                raise RegistryUnavailable(
                    f"digest verification failed for {subject} in {target.repository}: "
                    f"{source} digest is {claimed} but the content hashes to {actual}"
                )
        return expected or header or _hash("sha256", reply.content)

    # -- cache ---------------------------------------------------------------------

    def _store(self, key: _CacheKey, resolved: Resolved) -> None:
        ttl = self._settings.cache_ttl_seconds
        if ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            _bound(self._resolved, now)
            self._resolved[key] = (resolved, now + ttl)

    # -- HTTP plumbing ---------------------------------------------------------------

    @staticmethod
    def _normalize_host(host: str) -> str:
        host = host.strip().lower()
        if "://" in host:
            host = host.split("://", 1)[1]
        return host.rstrip("/")

    def _target(self, ref: Reference) -> _Target:
        scheme = "http" if self._normalize_host(ref.domain) in self._insecure else "https"
        return _Target(domain=ref.domain, path=ref.path, base_url=f"{scheme}://{registry_api_host(ref.domain)}")

    @staticmethod
    def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
        context = ssl.create_default_context()
        try:
            context.load_verify_locations(cafile=certifi.where())
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"cannot load CA bundle {ca_bundle!r}: {exc}") from exc
        return context

    def _request(
        self,
        method: str,
        url: str,
        target: _Target,
        credential: Credential | None,
        *,
        accept: str | None,
        limit: int,
    ) -> _Reply:
        """Send a registry request, answering a 401 challenge once; 401/403 after that is final."""
        headers = {"Accept": accept} if accept else {}
        fingerprint = _fingerprint(credential)
        authorization, token_key = self._known_authorization(target, credential, fingerprint)
        reply = self._send(method, url, target, headers=headers, authorization=authorization, limit=limit)
        if reply.status == 401:
            challenge = _pick_challenge(reply.headers)
            if challenge is None:
                raise Unauthorized(self._denied(target, credential, reply.status, "without a usable challenge"))
            with self._lock:
                self._challenges[target.base_url] = challenge
                if token_key is not None:
                    # The token we sent was refused (expired or revoked): never reuse it.
                    self._tokens.pop(token_key, None)
            authorization = self._authorize(challenge, target, credential, fingerprint)
            reply = self._send(method, url, target, headers=headers, authorization=authorization, limit=limit)
        if reply.status in (401, 403):
            raise Unauthorized(self._denied(target, credential, reply.status))
        return reply

    @staticmethod
    def _denied(target: _Target, credential: Credential | None, status: int, detail: str = "") -> str:
        supplied = "credentials were supplied" if credential is not None else "no credentials were supplied"
        extra = f" {detail}" if detail else ""
        return f"registry {target.domain} denied access to {target.repository} (HTTP {status}{extra}; {supplied})"

    def _known_authorization(
        self, target: _Target, credential: Credential | None, fingerprint: str
    ) -> tuple[str | None, _TokenKey | None]:
        """Authorization to send up front when this registry has challenged us before,
        which saves a round trip per request."""
        with self._lock:
            challenge = self._challenges.get(target.base_url)
            if challenge is None:
                return None, None
            if challenge.scheme == "basic":
                return _basic_authorization(credential), None
            key: _TokenKey = (challenge.realm, challenge.service or "", target.scope, fingerprint)
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached[1]:
                return f"Bearer {cached[0]}", key
        return None, None

    def _authorize(
        self, challenge: _Challenge, target: _Target, credential: Credential | None, fingerprint: str
    ) -> str:
        if challenge.scheme == "basic":
            authorization = _basic_authorization(credential)
            if authorization is None:
                detail = "requiring a username and password"
                raise Unauthorized(self._denied(target, credential, 401, detail))
            return authorization
        key: _TokenKey = (challenge.realm, challenge.service or "", target.scope, fingerprint)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached[1]:
                return f"Bearer {cached[0]}"
        token, expires_in = self._fetch_token(challenge, target, credential)
        # Renew a little early so a token does not expire between our check and the registry's.
        lifetime = expires_in - min(10.0, expires_in / 10)
        with self._lock:
            now = self._clock()
            _bound(self._tokens, now)
            self._tokens[key] = (token, now + lifetime)
        return f"Bearer {token}"

    def _realm_url(self, realm: str, target: _Target) -> httpx.URL:
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            raise RegistryUnavailable(f"registry {target.domain} sent an invalid token realm") from None
        if url.scheme == "https" or (url.scheme == "http" and _is_loopback(url.host)):
            return url
        # Credentials would travel in clear text (or to an unexpected protocol handler).
        raise RegistryUnavailable(
            f"token realm must use https (registry {target.domain} sent {url.scheme}://{url.host})"
        )

    def _fetch_token(self, challenge: _Challenge, target: _Target, credential: Credential | None) -> tuple[str, float]:
        realm = self._realm_url(challenge.realm, target)
        params = {"scope": target.scope}
        if challenge.service:
            params["service"] = challenge.service
        method, data, authorization = "GET", None, None
        if credential is not None and credential.password is None and credential.identity_token is not None:
            method = "POST"
            data = {
                "grant_type": "refresh_token",
                "refresh_token": _secret(credential.identity_token),
                "client_id": _CLIENT_ID,
                **params,
            }
        else:
            authorization = _basic_authorization(credential)
        url = str(realm) if data is not None else str(realm.copy_merge_params(params))
        reply = self._send(
            method,
            url,
            target,
            headers={"Accept": "application/json"},
            authorization=authorization,
            limit=_MAX_TOKEN_RESPONSE_BYTES,
            data=data,
        )
        if reply.status in (400, 401, 403):
            raise Unauthorized(self._denied(target, credential, reply.status, f"from token service {realm.host}"))
        if reply.status != 200:
            raise RegistryError(f"token service {realm.host} for registry {target.domain} returned HTTP {reply.status}")
        try:
            document = json.loads(reply.content)
        except ValueError:
            document = None
        token = None
        expires_in: Any = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
            expires_in = document.get("expires_in")
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(f"token service {realm.host} for registry {target.domain} sent no token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = _DEFAULT_TOKEN_TTL
        return token, float(expires_in)

    def _send(
        self,
        method: str,
        url: str,
        target: _Target,
        *,
        headers: Mapping[str, str],
        authorization: str | None,
        limit: int,
        data: Mapping[str, str] | None = None,
    ) -> _Reply:
        """One logical request with retries for 429, 5xx and transport failures."""
        request_headers = dict(headers)
        if authorization is not None:
            request_headers["Authorization"] = authorization
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            request = self._http.build_request(method, url, headers=request_headers, data=data)
            delay: float
            try:
                response = self._http.send(request, stream=True)
                try:
                    status = response.status_code
                    logger.debug("%s %s -> %s", method, url, status)
                    if status == 429 or status >= 500:
                        if attempt >= attempts:
                            raise RegistryUnavailable(self._exhausted(target, status, attempts))
                        delay = self._retry_delay(response, attempt) if status == 429 else self._backoff(attempt)
                    elif 200 <= status < 300:
                        content = b"" if method == "HEAD" else self._read(response, limit, target, url)
                        return _Reply(status, response.headers, content)
                    else:
                        return _Reply(status, response.headers, self._read_prefix(response))
                finally:
                    response.close()
            except httpx.TransportError as exc:
                if _is_tls_error(exc):
                    raise RegistryUnavailable(
                        f"TLS verification failed for {httpx.URL(url).host} (registry {target.domain}): {exc}"
                    ) from exc
                if attempt >= attempts:
                    raise RegistryUnavailable(
                        f"cannot reach registry {target.domain} at {httpx.URL(url).host} after "
                        f"{attempts} attempt(s): {type(exc).__name__}: {exc}"
                    ) from exc
                logger.debug("%s %s failed (%s); retrying", method, url, type(exc).__name__)
                delay = self._backoff(attempt)
            except (httpx.TooManyRedirects, httpx.DecodingError) as exc:
                raise RegistryUnavailable(
                    f"registry {target.domain} sent an unusable response for {target.repository}: {type(exc).__name__}"
                ) from exc
            logger.debug("retrying %s %s in %.2fs (attempt %d of %d)", method, url, delay, attempt + 1, attempts)
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    @staticmethod
    def _exhausted(target: _Target, status: int, attempts: int) -> str:
        reason = "is rate limiting requests" if status == 429 else "is failing"
        return f"registry {target.domain} {reason} (HTTP {status} after {attempts} attempt(s))"

    def _backoff(self, attempt: int) -> float:
        return float(min(0.5 * 2 ** (attempt - 1), 5.0, self._settings.max_retry_after_seconds))

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        cap = self._settings.max_retry_after_seconds
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return self._backoff(attempt)
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return self._backoff(attempt)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        if seconds != seconds:  # NaN
            return self._backoff(attempt)
        return max(0.0, min(seconds, cap))

    def _read(self, response: httpx.Response, limit: int, target: _Target, url: str) -> bytes:
        too_large = (
            f"response from registry {target.domain} for {httpx.URL(url).path} is larger than the {limit}-byte limit"
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RegistryUnavailable(too_large)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise RegistryUnavailable(too_large)
        return bytes(body)

    def _read_prefix(self, response: httpx.Response) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _MAX_ERROR_BODY_BYTES:
                break
        return bytes(body[:_MAX_ERROR_BODY_BYTES])

    @staticmethod
    def _raise_for_status(reply: _Reply, target: _Target, subject: str, not_found: type[RegistryError]) -> None:
        codes = _error_codes(reply.content)
        if reply.status == 404:
            hint = " (the repository does not exist)" if "NAME_UNKNOWN" in codes else ""
            raise not_found(f"{subject} not found in {target.repository}{hint}")
        detail = f" ({', '.join(codes)})" if codes else ""
        raise RegistryError(
            f"registry {target.domain} rejected the request for {subject} in {target.repository}: "
            f"HTTP {reply.status}{detail}"
        )
