"""One registry request on the wire: redirects followed hop by hop under rules, bodies bounded, retries.

- Redirects are followed here, never by httpx: each hop is checked (https, or http only for insecure
  registries; loopback only when allowed; never link-local or unspecified addresses; private, shared, ULA
  and NAT64 addresses only for the registry's own host, networks the registry itself is in, or networks
  the operator allows), at most ``MAX_REDIRECTS`` of them. A hop to another origin carries no
  Authorization header, and a request with a body (the refresh-token POST) is never re-sent to another origin.
- No cookie jar: requests are sent straight to the transport, so nothing one tenant's reply sets is
  replayed for another.
- Bodies are read within a byte limit counted AFTER decoding: ``Accept-Encoding: identity`` is asked for,
  gzip/deflate sent anyway are inflated with a cap, any other encoding is refused.
- 429 (honouring Retry-After) and 5xx and transport failures are retried while the deadline allows.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from .errors import RegistryUnavailable, unreachable
from .hops import HopRules, private_networks
from .network import AddressPolicy, Deadline, Refused, deadline

__all__ = [
    "MAX_ERROR_BODY_BYTES",
    "MAX_REDIRECTS",
    "AddressPolicy",
    "HopRules",
    "Reply",
    "Sender",
    "TooLarge",
    "private_networks",
]  # HopRules and private_networks live in hops; kept here for callers of this module

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
# Error bodies are only read for the registry's error code; anything longer is noise.
MAX_ERROR_BODY_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Observer = Callable[[str, str, "int | None"], None]


class TooLarge(Exception):
    pass


class _BadReply(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    """A response read in full (within its limit); ``url`` is where it finally came from."""

    status: int
    headers: httpx.Headers
    content: bytes | bytearray  # a body as read (bytearray: see _read); never written to after
    url: httpx.URL

    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";", 1)[0].strip()

    def as_httpx(self, request: httpx.Request, *, body: bool = True) -> httpx.Response:
        """The reply as an httpx.Response (for an httpx auth flow); ``body=False`` leaves the content out, for
        a reply whose body the flow never reads (httpx needs bytes: a bytearray would be copied)."""
        # Content-Encoding and -Length describe the wire, not the decoded content handed over here.
        headers = [(k, v) for k, v in self.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
        content = bytes(self.content) if body else b""
        response = httpx.Response(self.status, headers=headers, content=content, request=request)
        response.extensions["apprelease_final_url"] = self.url
        return response


_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


class _Decoder:
    """Content-Encoding layers undone with a cap on the decoded size (a 3.5 KB gzip-of-gzip is 4 GiB)."""

    def __init__(self, header: str, limit: int) -> None:
        encodings = [e.strip().lower() for e in header.split(",") if e.strip()]
        self._limit = limit
        self._layers: list[zlib._Decompress] = []
        for encoding in reversed(encodings):
            if encoding == "identity":
                continue
            if encoding in ("gzip", "x-gzip"):
                self._layers.append(zlib.decompressobj(16 + zlib.MAX_WBITS))
            elif encoding == "deflate":
                self._layers.append(zlib.decompressobj())
            else:
                raise _BadReply(f"unsupported Content-Encoding {encoding!r}")

    def feed(self, data: bytes) -> bytes:
        for layer in self._layers:
            data = layer.decompress(data, self._limit + 1)
            if layer.unconsumed_tail or len(data) > self._limit:
                raise TooLarge()
        return data


class Sender:
    """Sends one request (and its redirects and retries); shared by all registries, so it holds no state
    about any of them beyond the connection pools."""

    def __init__(
        self,
        transport_for: Callable[[AddressPolicy], httpx.BaseTransport],
        *,
        max_attempts: int,
        max_retry_after_seconds: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        observer: Observer | None,
    ) -> None:
        self._transport_for = transport_for
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after_seconds
        self._sleep = sleep
        self._clock = clock
        self._observer = observer

    def send(
        self,
        request: httpx.Request,
        *,
        domain: str,
        rules: HopRules,
        limit: int,
        until: Deadline,
        retry_server_errors: bool = True,
    ) -> Reply:
        """The final reply; 2xx bodies within ``limit``, others truncated to their first bytes. A 5xx is
        retried unless ``retry_server_errors`` is False (then it is returned: a HEAD's caller asks with GET)."""
        for attempt in range(1, self._max_attempts + 1):
            try:
                reply = self._follow(request, domain, rules, limit, until)
            except Refused as exc:
                raise RegistryUnavailable(
                    f"registry {domain}: refused to connect: {exc} (a token realm or redirect may lead to a private "
                    "network only when the registry itself is in it or the operator allows it)"
                ) from None
            except (httpx.TransportError, _BadReply, zlib.error) as exc:
                log.debug(
                    "%s %s for registry %s failed: %s: %s",
                    request.method,
                    request.url.path,
                    domain,
                    type(exc).__name__,
                    exc,
                )
                final = not isinstance(exc, httpx.TransportError) or isinstance(exc, httpx.TimeoutException)
                if final or _is_tls_error(exc) or attempt >= self._max_attempts:
                    # Garbage, a deadline passed, or TLS failed: another try within the deadline would not help.
                    raise unreachable(domain) from None
                self._wait(self._backoff(attempt), until, domain)
                continue
            except TooLarge:
                log.debug("%s %s for registry %s: reply over %d bytes", request.method, request.url.path, domain, limit)
                raise unreachable(domain) from None
            if reply.status >= 500 and not retry_server_errors:
                return reply
            if reply.status == 429 or reply.status >= 500:
                if attempt >= self._max_attempts:
                    reason = "is rate limiting requests" if reply.status == 429 else "is failing"
                    raise RegistryUnavailable(
                        f"registry {domain} {reason} (HTTP {reply.status} after {attempt} attempt(s))"
                    )
                delay = self._retry_after(reply, attempt) if reply.status == 429 else self._backoff(attempt)
                self._wait(delay, until, domain, reply.status)
                continue
            return reply
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    # -- one attempt: the redirect chain ----------------------------------------------------------------

    def _follow(self, request: httpx.Request, domain: str, rules: HopRules, limit: int, until: Deadline) -> Reply:
        # A copy per attempt: the caller's request (and its auth flow's edits) stays as it was.
        request = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content, extensions=request.extensions
        )
        first = request
        for _hop in range(MAX_REDIRECTS + 1):
            with deadline(until):  # the check may look the registry's own host up (HopRules.policy)
                problem = rules.problem(request.url)
            if problem is not None:
                raise self._refused(domain, request, first, problem)
            reply = self._exchange(request, domain, rules, limit, until)
            location = reply.headers.get("location")
            if reply.status not in _REDIRECTS or not location:
                return reply
            try:
                target = request.url.join(location)
            except httpx.InvalidURL:
                raise _BadReply("invalid redirect location") from None
            request = self._redirected(request, target, reply.status, domain)
        raise RegistryUnavailable(f"registry {domain} redirected more than {MAX_REDIRECTS} times")

    @staticmethod
    def _refused(domain: str, request: httpx.Request, first: httpx.Request, problem: str) -> RegistryUnavailable:
        if request is first and request.url.host == first.url.host:
            what = f"request to {request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"
        else:
            what = "redirect or token service location"
        return RegistryUnavailable(f"registry {domain}: refused {what} ({problem})")

    @staticmethod
    def _redirected(request: httpx.Request, target: httpx.URL, status: int, domain: str) -> httpx.Request:
        method = request.method
        if status == 303 and method != "HEAD" or status in (301, 302) and method == "POST":
            method = "GET"
        keeps_body = method == request.method and method not in ("GET", "HEAD")
        headers = httpx.Headers(request.headers)
        if _origin(target) != _origin(request.url):
            if keeps_body:
                # 307/308 would re-send the body (a refresh token) to a host it was not meant for.
                raise RegistryUnavailable(f"registry {domain}: refused to re-send a request body to another host")
            headers.pop("authorization", None)
            headers.pop("cookie", None)
        for name in ("content-length", "content-type", "transfer-encoding"):
            if not keeps_body:
                headers.pop(name, None)
        headers["host"] = target.netloc.decode("ascii")
        content = request.content if keeps_body else None
        return httpx.Request(method, target, headers=headers, content=content, extensions=request.extensions)

    def _exchange(self, request: httpx.Request, domain: str, rules: HopRules, limit: int, until: Deadline) -> Reply:
        status: int | None = None
        try:
            with deadline(until):
                transport = self._transport_for(rules.policy(request.url))
                response = transport.handle_request(request)
                try:
                    status = response.status_code
                    log.debug("%s %s -> %s", request.method, request.url.path, status)
                    if 200 <= status < 300:
                        content = b"" if request.method == "HEAD" else self._read(response, limit, truncate=False)
                    else:
                        content = self._read(response, MAX_ERROR_BODY_BYTES, truncate=True)
                finally:
                    response.close()
        finally:
            self._observe(domain, request.method, status)
        return Reply(status, response.headers, content, request.url)

    @staticmethod
    def _read(response: httpx.Response, limit: int, *, truncate: bool) -> bytearray:
        declared = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "")
        if not truncate and not encoding and declared.isdigit() and int(declared) > limit:
            raise TooLarge()
        # One buffer, grown in place: bytes joined from pieces held the body twice at the end, and the
        # pieces (64 KiB each, under glibc's mmap threshold) fragmented the heap that several concurrent
        # multi-MB bodies share. With the image's fixed mmap threshold (MALLOC_MMAP_THRESHOLD_, see
        # operator/Dockerfile) a large buffer is a mapping of its own: grown by mremap without a copy, and
        # returned to the system when freed.
        body = bytearray()
        try:
            chunks: Iterable[bytes] = [response.content]  # already in memory: an in-process test transport
        except httpx.ResponseNotRead:
            chunks = response.iter_raw()
            decoder = _Decoder(encoding, limit)
        else:
            decoder = _Decoder("", limit)  # httpx decoded it already
        try:
            for chunk in chunks:
                body += decoder.feed(chunk)
                if len(body) > limit:
                    raise TooLarge()
        except TooLarge:
            if not truncate:
                raise
        del body[limit:]
        return body

    def _observe(self, domain: str, method: str, status: int | None) -> None:
        if self._observer is None:
            return
        try:
            self._observer(domain, method, status)
        except Exception:  # metrics must never break a request
            log.debug("registry request observer failed", exc_info=True)

    # -- retry timing -----------------------------------------------------------------------------------

    def _wait(self, delay: float, until: Deadline, domain: str, status: int | None = None) -> None:
        if delay >= until.remaining():
            if status is None:
                raise unreachable(domain)
            raise RegistryUnavailable(f"registry {domain} asked to wait past the deadline (HTTP {status})")
        log.debug("retrying a request to registry %s in %.2fs", domain, delay)
        self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(0.5 * 2 ** (attempt - 1), 5.0, self._max_retry_after))

    def _retry_after(self, reply: Reply, attempt: int) -> float:
        value = reply.headers.get("retry-after", "").strip()
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
        return max(0.0, min(seconds, self._max_retry_after))
