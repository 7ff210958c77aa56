"""The registry client's public face: resolve a tag to a digest, read an image's labels (every platform's).

It composes the parts: ``transport`` (hop rules, byte limits, retries; sockets with a deadline in
``network``), ``auth`` (an httpx.Auth flow per registry and credential), ``oci`` (media types and the
facts read from documents) and ``caches``. It talks to the OCI distribution API directly (never the
Docker daemon).

Request economy, since 1,000 AppReleases often name one image: content behind a digest is fetched at most
once per process and only its facts are kept (bounded by what they cost in memory, keyed by repository and
digest); a tag's resolution is cached for ``cache_ttl_seconds`` per (repository, tag, credential);
concurrent callers of one key share one request (single-flight).

Time: one deadline per resolution (``resolution_timeout_seconds``) covers every request of it (HEAD, GET,
token, configs, index children); ``resolution()`` lets a caller put several calls under one. Every failure
is a ``RegistryError``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import httpcore
import httpx

from ..core import limits
from ..reference import Reference, is_valid_digest, registry_api_host
from . import oci, replies
from .auth import MAX_TOKEN_REPLY_BYTES, AuthMemory, RegistryAuth, Target, denied, fingerprint
from .caches import Cache, SingleFlight
from .credentials import Credential, effective
from .errors import RegistryError, RegistryUnavailable, TagNotFound, Unauthorized, UnsupportedManifest, unreachable
from .hops import HopRules, normalize_host, private_networks
from .models import PlatformLabels, RegistrySettings, Resolved
from .network import Deadline, Resolver
from .pools import Transports
from .slots import BodySlots
from .transport import Observer, Reply, Sender

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "PlatformLabels",
    "RegistryClient",
    "RegistryError",
    "RegistrySettings",
    "RegistryUnavailable",
    "Resolved",
    "TagNotFound",
    "Unauthorized",
    "UnsupportedManifest",
]

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPES = oci.MANIFEST_MEDIA_TYPES
_MAX_INDEX_DEPTH = 3
_USER_AGENT = "apprelease"


_ResolveKey = tuple[str, str, str]  # repository, tag, credential fingerprint
_DigestKey = tuple[str, str]  # repository, digest
_Facts = oci.ManifestFacts | oci.ConfigFacts
_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("registry_resolution", default=None)


class RegistryClient:
    """Synchronous, thread-safe client for the parts of the OCI distribution API the operator needs.

    ``on_request(registry, method, status)`` is called for every HTTP request made (token requests and
    redirect hops included; status None when no response came), e.g. to count requests for metrics.
    ``resolver`` looks host names up (tests map names to addresses with it; default: the system's);
    ``network_backend`` opens the sockets once the addresses passed the checks (a seam for tests)."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        on_request: Observer | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
        network_backend: httpcore.NetworkBackend | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings or RegistrySettings()
        self._clock = clock
        self._insecure = frozenset(normalize_host(h) for h in self._settings.insecure_registries)
        self._allowed_private = private_networks(self._settings.allowed_private_networks)
        self._closed = False
        self._resolver = resolver or Resolver()
        self._transports = Transports(self._settings.ca_bundle, self._resolver, network_backend, transport)
        self._sender = Sender(
            self._transports.for_policy,
            max_attempts=self._settings.max_attempts,
            max_retry_after_seconds=self._settings.max_retry_after_seconds,
            sleep=sleep,
            clock=clock,
            observer=on_request,
        )
        self._auth = AuthMemory(clock)
        # Kept past the cache period (bounded by count), for callers that accept an older answer (max_age).
        self._resolved: Cache[_ResolveKey, tuple[Resolved, float]] = Cache(4096, clock=clock)
        self._content: Cache[_DigestKey, _Facts] = Cache(
            self._settings.digest_cache_bytes, getsizeof=lambda facts: facts.size(), clock=clock
        )
        self._resolving: SingleFlight[_ResolveKey, Resolved] = SingleFlight()
        self._fetching: SingleFlight[_DigestKey, _Facts] = SingleFlight()
        self._slots = BodySlots(self._settings.max_concurrent_fetches)  # manifests and configs held at once

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._transports.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- public API ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def resolution(self) -> Iterator[Deadline]:
        """One deadline (``resolution_timeout_seconds``) for every request made in the block, by this thread;
        a block inside another keeps the outer deadline."""
        current = _current.get()
        if current is not None:
            yield current
            return
        token = _current.set(Deadline(self._clock() + self._settings.resolution_timeout_seconds, self._clock))
        try:
            yield _current.get() or Deadline(0, self._clock)
        finally:
            _current.reset(token)

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
        credential = effective(credential)
        key: _ResolveKey = (ref.repository, tag, fingerprint(credential))
        if use_cache:
            cached = self._resolved.get(key)
            limit = self._settings.cache_ttl_seconds if max_age is None else max_age
            if cached is not None and self._clock() - cached[1] < limit:
                return cached[0]
        with self._guarded(ref.domain), self.resolution() as until:
            return self._resolving.do(key, lambda: self._resolve(ref, tag, credential, key), until.remaining())

    def labels(self, ref: Reference, credential: Credential | None = None) -> dict[str, str]:
        """Labels of the image's config (for an index: the linux/amd64 child, else the first platform)."""
        identifier = self._identifier(ref)
        credential = effective(credential)
        with self._guarded(ref.domain), self.resolution():
            target = self._target(ref)
            facts = self._manifest(target, identifier, ref.digest, credential)
            for _ in range(_MAX_INDEX_DEPTH):
                if not facts.is_index:
                    break
                child = facts.preferred()
                if child is None:
                    raise RegistryError(f"image index in {target.repository} lists no usable manifests")
                facts = self._manifest(target, child.digest, child.digest, credential)
            else:
                if facts.is_index:
                    raise RegistryError(f"image index in {target.repository} nests more than {_MAX_INDEX_DEPTH} deep")
            if facts.config is None:
                raise RegistryError(f"manifest in {target.repository} has no config descriptor")
            return self._config(target, facts.config, credential).as_dict()

    def platform_labels(self, ref: Reference, credential: Credential | None = None) -> list[PlatformLabels]:
        """The config labels of every platform an image runs as: one entry for an image manifest; for an
        index, one per platform child (nested indexes followed ``_MAX_INDEX_DEPTH`` deep), attestation
        manifests skipped wherever they sit. An index listing more than ``limits.MAX_PLATFORMS`` platforms
        is ``UnsupportedManifest``; one listing none is a ``RegistryError``."""
        identifier = self._identifier(ref)
        credential = effective(credential)
        with self._guarded(ref.domain), self.resolution():
            target = self._target(ref)
            top = self._manifest(target, identifier, ref.digest, credential)
            images: list[tuple[str, str, str]] = []  # platform, manifest digest, config digest
            self._walk(target, top, ref.digest or identifier, "", credential, 0, images)
            if not images:
                raise RegistryError(f"image index in {target.repository} lists no usable manifests")
            return [
                PlatformLabels(platform, digest, self._config(target, config, credential).as_dict())
                for platform, digest, config in images
            ]

    # -- resolution ------------------------------------------------------------------------------------

    def _resolve(self, ref: Reference, tag: str, credential: Credential | None, key: _ResolveKey) -> Resolved:
        target = self._target(ref)
        subject = f"tag {tag!r}"
        digest: str | None = None
        media_type = ""
        # HEAD is an optimisation (it does not count as a pull on Docker Hub): whatever it fails with but
        # 401, 429 or the network, one GET decides, as containerd, crane and Docker's client do.
        head = self._request(target, credential, "HEAD", target.url("manifests", tag), oci.MANIFEST_ACCEPT, 0)
        if head.status == 200:
            header = head.headers.get("docker-content-digest", "")
            if is_valid_digest(header) and head.content_type() in oci.MANIFEST_MEDIA_TYPES:
                digest, media_type = header, head.content_type()
        else:
            log.debug("registry %s: HEAD %s answered %d; asking with GET", target.domain, subject, head.status)
        if digest is None:  # parsed (and kept by digest for the labels read that usually follows): a 200
            # that is not a manifest of a media type asked for is no resolution. In a fetch slot (slots.py).
            with self._slots.hold(self._until(), target.domain):
                reply, digest = self._get_manifest(target, tag, None, credential, subject)
                media_type = self._remember_manifest(target, reply, digest, subject).media_type
        resolved = Resolved(Reference(domain=ref.domain, path=ref.path, tag=tag), digest, media_type)
        self._resolved.put(key, (resolved, self._clock()))
        return resolved

    def _walk(
        self,
        target: Target,
        facts: oci.ManifestFacts,
        digest: str,
        platform: str,
        credential: Credential | None,
        depth: int,
        images: list[tuple[str, str, str]],
    ) -> None:
        if not facts.is_index:
            if facts.config is None:
                raise RegistryError(f"manifest {digest} in {target.repository} has no config descriptor")
            images.append((platform, digest, facts.config))
            return
        if depth >= _MAX_INDEX_DEPTH:
            raise RegistryError(f"image index in {target.repository} nests more than {_MAX_INDEX_DEPTH} deep")
        if facts.platforms + len(images) > limits.MAX_PLATFORMS:
            raise UnsupportedManifest(
                f"image index {digest} in {target.repository} lists {facts.platforms} platforms; "
                f"at most {limits.MAX_PLATFORMS} are checked"
            )
        for child in facts.children:
            found = self._manifest(target, child.digest, child.digest, credential)
            self._walk(target, found, child.digest, child.platform or platform, credential, depth + 1, images)

    # -- content behind a digest -----------------------------------------------------------------------

    def _manifest(
        self, target: Target, identifier: str, expected: str | None, credential: Credential | None
    ) -> oci.ManifestFacts:
        subject = f"manifest {identifier}" if expected else f"tag {identifier!r}"

        def fetch() -> _Facts:
            with self._slots.hold(self._until(), target.domain):
                reply, digest = self._get_manifest(target, identifier, expected, credential, subject)
                return self._remember_manifest(target, reply, digest, subject)

        found = fetch() if expected is None else self._content_for(target, expected, fetch)
        if not isinstance(found, oci.ManifestFacts):
            raise RegistryError(f"{subject} in {target.repository} is not a manifest")
        return found

    def _remember_manifest(self, target: Target, reply: Reply, digest: str, subject: str) -> oci.ManifestFacts:
        try:
            facts = oci.parse_manifest(
                reply.content, reply.content_type(), self._settings.max_manifest_bytes, limits.MAX_PLATFORMS
            )
        except oci.Unsupported as refused:
            raise UnsupportedManifest(
                f"{subject} in {target.repository} has media type {limits.quoted(refused.media_type)}: "
                f"{refused.what}; only OCI image manifests and indexes, Docker v2 manifests and manifest lists "
                "are accepted"
            ) from None
        except ValueError as exc:
            log.debug("registry %s: %s %s", target.domain, digest, exc)
            raise unreachable(target.domain) from None
        self._content.put((target.repository, digest), facts)
        return facts

    def _config(self, target: Target, digest: str, credential: Credential | None) -> oci.ConfigFacts:
        def fetch() -> _Facts:
            with self._slots.hold(self._until(), target.domain):
                reply = self._request(
                    target, credential, "GET", target.url("blobs", digest), None, self._settings.max_config_bytes
                )
                if reply.status != 200:
                    replies.raise_for_status(reply, target, f"config blob {digest}")
                replies.verify(reply, digest, target, "config blob")
                try:
                    config = oci.parse_config(reply.content, self._settings.max_config_bytes)
                except ValueError as exc:
                    log.debug("registry %s: config %s: %s", target.domain, digest, exc)
                    raise unreachable(target.domain) from None
            self._content.put((target.repository, digest), config)
            return config

        found = self._content_for(target, digest, fetch)
        if not isinstance(found, oci.ConfigFacts):
            raise RegistryError(f"config blob {digest} in {target.repository} is not an image config")
        return found

    def _content_for(self, target: Target, digest: str, fetch: Callable[[], _Facts]) -> _Facts:
        key = (target.repository, digest)
        cached = self._content.get(key)
        return cached if cached is not None else self._fetching.do(key, fetch, self._until().remaining())

    def _get_manifest(
        self, target: Target, identifier: str, expected: str | None, credential: Credential | None, subject: str
    ) -> tuple[Reply, str]:
        """GET a manifest within the size limit and verify its bytes; returns the reply and its digest."""
        url = target.url("manifests", identifier)
        reply = self._request(target, credential, "GET", url, oci.MANIFEST_ACCEPT, self._settings.max_manifest_bytes)
        if reply.status != 200:
            replies.raise_for_status(reply, target, subject)
        return reply, replies.verify(reply, expected, target, subject)

    # -- one request, with its auth round trips --------------------------------------------------------

    def _until(self) -> Deadline:
        """The current resolution's deadline, cut to ``timeout_seconds`` for one request."""
        own = self._clock() + self._settings.timeout_seconds
        resolution = _current.get()
        return Deadline(own if resolution is None else min(own, resolution.expires_at), self._clock)

    def _request(
        self, target: Target, credential: Credential | None, method: str, url: str, accept: str | None, limit: int
    ) -> Reply:
        """One registry request under the deadline, answering a 401 challenge once; a 401 after that is final
        (and a 403 too, except for HEAD: a GET then decides). A HEAD's 5xx is not retried."""
        until = self._until()
        head = method == "HEAD"
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if accept:
            headers["Accept"] = accept
        request = httpx.Request(method, url, headers=headers)
        flow = RegistryAuth(target, credential, self._auth).sync_auth_flow(request)
        outgoing = next(flow)
        reply: Reply | None = None  # the request's own reply (the last one the flow saw)
        while True:
            outgoing.headers.setdefault("User-Agent", _USER_AGENT)
            outgoing.headers.setdefault("Accept-Encoding", "identity")
            own = outgoing is request
            answer = self._sender.send(
                outgoing,
                domain=target.domain,
                rules=target.rules,
                limit=limit if own else MAX_TOKEN_REPLY_BYTES,
                until=until,
                retry_server_errors=not (head and own),
            )
            # The flow reads only a token reply's body (a copy: httpx takes bytes, so the reply itself is
            # dropped first); the request's own reply (a manifest, a config: megabytes) it judges by status
            # and headers.
            response = answer.as_httpx(outgoing, body=not own)
            reply = answer if own else None
            del answer
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break
            finally:
                del response  # not held through the next request
        if reply is None:  # the flow ended on a token reply: never the case with RegistryAuth
            raise RuntimeError("the registry auth flow ended without the request's own reply")
        if reply.status == 401 or (reply.status == 403 and not head):
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

    @staticmethod
    def _identifier(ref: Reference) -> str:
        identifier = ref.digest or ref.tag
        if identifier is None:
            raise ValueError(f"cannot read labels of {ref}: the reference has neither a digest nor a tag")
        return identifier

    def _target(self, ref: Reference) -> Target:
        insecure = normalize_host(ref.domain) in self._insecure
        scheme = "http" if insecure else "https"
        base = f"{scheme}://{registry_api_host(ref.domain)}"
        rules = HopRules.for_registry(httpx.URL(base), self._insecure, self._allowed_private, self._resolver)
        return Target(domain=ref.domain, path=ref.path, base_url=base, rules=rules)
