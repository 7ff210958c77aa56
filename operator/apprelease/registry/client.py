"""The registry client's public face: resolve a tag to a digest, read an image's labels.

It composes the parts: ``transport`` (hop rules, byte limits, retries; sockets with a deadline in
``network``), ``auth`` (an httpx.Auth flow per registry and credential), ``oci`` (media types and
documents) and ``caches``. It talks to the OCI distribution API directly (never the Docker daemon).

Request economy, since 1,000 AppReleases often name one image: content behind a digest (manifests,
configs) is fetched at most once per process (bounded LRU, keyed by repository and digest); a tag's
resolution is cached for ``cache_ttl_seconds`` per (repository, tag, credential); concurrent callers of
one key share one request (single-flight). Every failure is a ``RegistryError``.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import certifi
import httpx
from pydantic import BaseModel, Field

from ..reference import Reference, is_valid_digest, registry_api_host
from . import oci
from .auth import MAX_TOKEN_REPLY_BYTES, AuthMemory, RegistryAuth, Target, denied, fingerprint
from .caches import Lru, SingleFlight
from .credentials import Credential
from .errors import RegistryError, RegistryUnavailable, TagNotFound, Unauthorized, unreachable
from .network import Deadline, GuardedTransport
from .transport import HopRules, Observer, Reply, Sender, is_loopback_host

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

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = oci.MANIFEST_MEDIA_TYPES
_MAX_INDEX_DEPTH = 3
_USER_AGENT = "apprelease"


class RegistrySettings(BaseModel):
    insecure_registries: list[str] = Field(default_factory=list)
    ca_bundle: str | None = None
    # The overall deadline of one registry request, auth round trips, redirects and retries included.
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_config_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    cache_ttl_seconds: float = Field(default=60.0, ge=0)
    max_retry_after_seconds: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    digest_cache_entries: int = Field(default=2048, ge=1)
    digest_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)


@dataclass(frozen=True)
class Resolved:
    reference: Reference
    digest: str
    media_type: str

    @property
    def pinned(self) -> str:
        return f"{self.reference.repository}@{self.digest}"


_ResolveKey = tuple[str, str, str]  # repository, tag, credential fingerprint
_DigestKey = tuple[str, str]  # repository, digest
_Content = tuple[oci.Manifest | oci.ImageConfig, str]  # a parsed document and its media type


def _effective(credential: Credential | None) -> Credential | None:
    if credential is None:
        return None
    if credential.username is None and credential.password is None and credential.identity_token is None:
        return None
    return credential


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if "://" in host:
        host = host.split("://", 1)[1]
    return host.rstrip("/")


class RegistryClient:
    """Synchronous, thread-safe client for the parts of the OCI distribution API the operator needs.

    ``on_request(registry, method, status)`` is called for every HTTP request made (token requests and
    redirect hops included; status None when no response came), e.g. to count requests for metrics."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        on_request: Observer | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings or RegistrySettings()
        self._clock = clock
        self._insecure = frozenset(_normalize_host(h) for h in self._settings.insecure_registries)
        self._closed = False
        self._transports: dict[bool, httpx.BaseTransport] = {}
        self._transports_lock = threading.Lock()
        self._override = transport
        self._ssl = None if transport is not None else self._ssl_context(self._settings.ca_bundle)
        self._sender = Sender(
            self._transport_for,
            max_attempts=self._settings.max_attempts,
            max_retry_after_seconds=self._settings.max_retry_after_seconds,
            sleep=sleep,
            clock=clock,
            observer=on_request,
        )
        self._auth = AuthMemory(clock)
        # Kept past the cache period (bounded by count), for callers that accept an older answer (max_age).
        self._resolved: Lru[_ResolveKey, tuple[Resolved, float]] = Lru(4096, clock=clock)
        self._content: Lru[_DigestKey, _Content] = Lru(
            self._settings.digest_cache_entries, self._settings.digest_cache_bytes, clock=clock
        )
        self._resolving: SingleFlight[_ResolveKey, Resolved] = SingleFlight()
        self._fetching: SingleFlight[_DigestKey, _Content] = SingleFlight()

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        with self._transports_lock:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()
        if self._override is not None:
            self._override.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- public API ------------------------------------------------------------------------------------

    def resolve(
        self,
        ref: Reference,
        credential: Credential | None = None,
        *,
        use_cache: bool = True,
        max_age: float | None = None,
    ) -> Resolved:
        """Resolve ``ref``'s tag to the digest the registry serves for it now: an answer at most
        ``max_age`` seconds old (default: the cache period) is reused; ``use_cache=False`` asks anyway."""
        if ref.tag is None:
            raise ValueError(f"cannot resolve {ref}: the reference has no tag")
        tag = ref.tag
        credential = _effective(credential)
        key: _ResolveKey = (ref.repository, tag, fingerprint(credential))
        if use_cache:
            cached = self._resolved.get(key)
            limit = self._settings.cache_ttl_seconds if max_age is None else max_age
            if cached is not None and self._clock() - cached[1] < limit:
                return cached[0]
        with self._guarded(ref.domain):
            return self._resolving.do(key, lambda: self._resolve(ref, tag, credential, key))

    def labels(self, ref: Reference, credential: Credential | None = None) -> dict[str, str]:
        """Labels of the image's config (for an index: the linux/amd64 child, else the first)."""
        identifier = ref.digest or ref.tag
        if identifier is None:
            raise ValueError(f"cannot read labels of {ref}: the reference has neither a digest nor a tag")
        credential = _effective(credential)
        with self._guarded(ref.domain):
            target = self._target(ref)
            manifest, media_type = self._manifest(target, identifier, ref.digest, credential)
            for _ in range(_MAX_INDEX_DEPTH):
                if not manifest.is_index(media_type):
                    break
                child = oci.pick_child(manifest)
                if child is None:
                    raise RegistryError(f"image index in {target.repository} lists no usable manifests")
                manifest, media_type = self._manifest(target, child, child, credential)
            else:
                if manifest.is_index(media_type):
                    raise RegistryError(f"image index in {target.repository} nests more than {_MAX_INDEX_DEPTH} deep")
            if manifest.config is None:
                raise RegistryError(f"manifest in {target.repository} has no config descriptor")
            return self._config(target, manifest.config.digest, credential).labels()

    # -- resolution ------------------------------------------------------------------------------------

    def _resolve(self, ref: Reference, tag: str, credential: Credential | None, key: _ResolveKey) -> Resolved:
        target = self._target(ref)
        subject = f"tag {tag!r}"
        digest: str | None = None
        media_type = ""
        head = self._request(target, credential, "HEAD", target.url("manifests", tag), oci.MANIFEST_ACCEPT, 0)
        if head.status == 200:
            header = head.headers.get("docker-content-digest", "")
            media_type = head.content_type()
            # Without a digest (or a media type) HEAD cannot answer the question, so ask with GET.
            if is_valid_digest(header) and media_type:
                digest = header
        elif head.status != 405:
            self._raise_for_status(head, target, subject)
        if digest is None:
            reply, digest = self._get_manifest(target, tag, None, credential, subject)
            # Parsed (and kept by digest, for the labels read that usually follows): a 200 that is not a
            # manifest is no resolution.
            _, media_type = self._remember_manifest(target, reply, digest)
        resolved = Resolved(Reference(domain=ref.domain, path=ref.path, tag=tag), digest, media_type)
        self._resolved.put(key, (resolved, self._clock()))
        return resolved

    # -- content behind a digest -----------------------------------------------------------------------

    def _manifest(
        self, target: Target, identifier: str, expected: str | None, credential: Credential | None
    ) -> tuple[oci.Manifest, str]:
        subject = f"manifest {identifier}" if expected else f"tag {identifier!r}"

        def fetch() -> _Content:
            reply, digest = self._get_manifest(target, identifier, expected, credential, subject)
            return self._remember_manifest(target, reply, digest)

        found, media_type = fetch() if expected is None else self._content_for(target, expected, fetch)
        if not isinstance(found, oci.Manifest):
            raise RegistryError(f"{subject} in {target.repository} is not a manifest")
        return found, media_type

    def _remember_manifest(self, target: Target, reply: Reply, digest: str) -> _Content:
        try:
            manifest = oci.parse_manifest(reply.content, self._settings.max_manifest_bytes)
        except ValueError as exc:
            log.debug("registry %s: %s %s", target.domain, digest, exc)
            raise unreachable(target.domain) from None
        media_type = manifest.media_type or reply.content_type()
        if media_type not in oci.MANIFEST_MEDIA_TYPES and manifest.config is None and manifest.manifests is None:
            log.debug("registry %s: %s is no manifest (%s)", target.domain, digest, media_type)
            raise unreachable(target.domain)
        content: _Content = (manifest, media_type)
        self._content.put((target.repository, digest), content, len(reply.content))
        return content

    def _config(self, target: Target, digest: str, credential: Credential | None) -> oci.ImageConfig:
        def fetch() -> _Content:
            url = target.url("blobs", digest)
            reply = self._request(target, credential, "GET", url, None, self._settings.max_config_bytes)
            if reply.status != 200:
                self._raise_for_status(reply, target, f"config blob {digest}")
            self._verify(reply, digest, target, "config blob")
            try:
                config = oci.parse_config(reply.content, self._settings.max_config_bytes)
            except ValueError as exc:
                log.debug("registry %s: config %s: %s", target.domain, digest, exc)
                raise unreachable(target.domain) from None
            content: _Content = (config, "")
            self._content.put((target.repository, digest), content, len(reply.content))
            return content

        found, _ = self._content_for(target, digest, fetch)
        if not isinstance(found, oci.ImageConfig):
            raise RegistryError(f"config blob {digest} in {target.repository} is not an image config")
        return found

    def _content_for(self, target: Target, digest: str, fetch: Callable[[], _Content]) -> _Content:
        key = (target.repository, digest)
        cached = self._content.get(key)
        return cached if cached is not None else self._fetching.do(key, fetch)

    def _get_manifest(
        self, target: Target, identifier: str, expected: str | None, credential: Credential | None, subject: str
    ) -> tuple[Reply, str]:
        """GET a manifest within the size limit and verify its bytes; returns the reply and its digest."""
        url = target.url("manifests", identifier)
        reply = self._request(target, credential, "GET", url, oci.MANIFEST_ACCEPT, self._settings.max_manifest_bytes)
        if reply.status != 200:
            self._raise_for_status(reply, target, subject)
        return reply, self._verify(reply, expected, target, subject)

    @staticmethod
    def _verify(reply: Reply, expected: str | None, target: Target, subject: str) -> str:
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
            actual = oci.content_digest(claimed.split(":", 1)[0], reply.content)
            if actual != claimed:
                raise RegistryUnavailable(
                    f"digest verification failed for {subject} in {target.repository}: "
                    f"{source} digest is {claimed} but the content hashes to {actual}"
                )
        return expected or header or oci.content_digest("sha256", reply.content)

    @staticmethod
    def _raise_for_status(reply: Reply, target: Target, subject: str) -> None:
        codes = oci.error_codes(reply.content)
        if reply.status == 404:
            hint = " (the repository does not exist)" if "NAME_UNKNOWN" in codes else ""
            raise TagNotFound(f"{subject} not found in {target.repository}{hint}")
        detail = f" ({', '.join(codes)})" if codes else ""
        raise RegistryError(
            f"registry {target.domain} rejected the request for {subject} in {target.repository}: "
            f"HTTP {reply.status}{detail}"
        )

    # -- one request, with its auth round trips --------------------------------------------------------

    def _request(
        self, target: Target, credential: Credential | None, method: str, url: str, accept: str | None, limit: int
    ) -> Reply:
        """One registry request under one deadline, answering a 401 challenge once; 401/403 after that is final."""
        until = Deadline(self._clock() + self._settings.timeout_seconds, self._clock)
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if accept:
            headers["Accept"] = accept
        request = httpx.Request(method, url, headers=headers)
        flow = RegistryAuth(target, credential, self._auth).sync_auth_flow(request)
        outgoing = next(flow)
        while True:
            outgoing.headers.setdefault("User-Agent", _USER_AGENT)
            outgoing.headers.setdefault("Accept-Encoding", "identity")
            reply = self._sender.send(
                outgoing,
                domain=target.domain,
                rules=target.rules,
                limit=limit if outgoing is request else MAX_TOKEN_REPLY_BYTES,
                until=until,
            )
            try:
                outgoing = flow.send(reply.as_httpx(outgoing))
            except StopIteration:
                break
        if reply.status in (401, 403):
            raise Unauthorized(denied(target, credential, reply.status))
        return reply

    @contextlib.contextmanager
    def _guarded(self, domain: str) -> Iterator[None]:
        """Whatever a hostile or broken server provokes leaves here as a RegistryError."""
        if self._closed:
            raise RuntimeError("the registry client is closed")
        try:
            yield
        except RegistryError:
            raise
        except Exception as exc:
            log.debug("registry %s: %s", domain, type(exc).__name__, exc_info=True)
            raise unreachable(domain) from None

    # -- plumbing --------------------------------------------------------------------------------------

    def _target(self, ref: Reference) -> Target:
        insecure = _normalize_host(ref.domain) in self._insecure
        scheme = "http" if insecure else "https"
        api_host = registry_api_host(ref.domain)
        rules = HopRules(self._insecure, loopback_ok=is_loopback_host(httpx.URL(f"{scheme}://{api_host}").host))
        return Target(domain=ref.domain, path=ref.path, base_url=f"{scheme}://{api_host}", rules=rules)

    def _transport_for(self, allow_loopback: bool) -> httpx.BaseTransport:
        if self._override is not None:
            return self._override
        with self._transports_lock:
            transport = self._transports.get(allow_loopback)
            if transport is None:
                assert self._ssl is not None
                transport = self._transports[allow_loopback] = GuardedTransport(
                    self._ssl, allow_loopback=allow_loopback
                )
            return transport

    @staticmethod
    def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certifi.where())
        if ca_bundle:
            try:
                context.load_verify_locations(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot load CA bundle {ca_bundle!r}: {exc}") from exc
        return context
