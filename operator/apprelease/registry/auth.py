"""Registry authentication as an ``httpx.Auth`` flow bound to one registry and one credential.

Anonymous first; on a 401 challenge, Basic or a Bearer token from the challenge's realm (Docker's token
protocol: GET with Basic credentials, or a refresh-token POST for identity tokens). Challenges and tokens
are remembered across requests (tokens per credential fingerprint, so no caller rides on another's token).
The flow is driven by the client through ``transport.Sender``, so token round trips get the same hop
rules, byte limits and deadline as registry requests.

Secrets only ever go into request headers and bodies: messages name registries and statuses, never secrets.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from . import jsonbounds
from .caches import Cache
from .credentials import Credential
from .errors import RegistryError, RegistryUnavailable, Unauthorized, unreachable
from .hops import HopRules

__all__ = [
    "MAX_TOKEN_REPLY_BYTES",
    "AuthMemory",
    "Challenge",
    "RegistryAuth",
    "Target",
    "fingerprint",
    "parse_challenges",
]

MAX_TOKEN_REPLY_BYTES = 1024 * 1024
_DEFAULT_TOKEN_TTL = 60.0
_CLIENT_ID = "apprelease"
# What may travel in an Authorization header: visible ASCII, nothing that could end or split a header.
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")


@dataclass(frozen=True)
class Target:
    """The repository being accessed: where to send requests and what to call it in messages."""

    domain: str
    path: str
    base_url: str
    rules: HopRules

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def scope(self) -> str:
        return f"repository:{self.path}:pull"

    def url(self, kind: str, reference: str) -> str:
        return f"{self.base_url}/v2/{self.path}/{kind}/{reference}"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    realm: str
    service: str | None


def _secret(value: SecretStr | None) -> str:
    return str(value.get_secret_value()) if value is not None else ""


def fingerprint(credential: Credential | None) -> str:
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


def basic_authorization(credential: Credential | None) -> str | None:
    if credential is None or (credential.username is None and credential.password is None):
        return None
    raw = f"{credential.username or ''}:{_secret(credential.password)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


_PARAM_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # an RFC 9110 token
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _param(element: str) -> tuple[str, str] | None:
    """``name=value`` or ``name="quoted value"`` (RFC 9110 auth-param); None for anything else."""
    name, sep, value = element.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not _PARAM_NAME.fullmatch(name):
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return name.lower(), value


def parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` values as (scheme, params), with the standard library's RFC 2068 list parsing.

    Several challenges may share one header value (``Basic realm="a", Bearer realm="b"``): an element
    that starts with a bare word followed by a space opens a new challenge. Never raises: a malformed
    parameter (``Bearer =``, an unterminated quote) is skipped, so at worst no challenge is usable."""
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in values:
        for element in urllib.request.parse_http_list(value):
            head, sep, rest = element.strip().partition(" ")
            if "=" not in head and _PARAM_NAME.fullmatch(head):
                challenges.append((head.lower(), {}))
                element = rest if sep else ""
            if not element.strip() or not challenges:
                continue
            param = _param(element)
            if param is not None:
                challenges[-1][1][param[0]] = param[1]
    return challenges


def pick_challenge(headers: httpx.Headers) -> Challenge | None:
    parsed = parse_challenges(headers.get_list("www-authenticate"))
    for wanted in ("bearer", "basic"):
        for scheme, params in parsed:
            realm = params.get("realm", "")
            if scheme == wanted and (scheme == "basic" or realm):
                return Challenge(scheme=scheme, realm=realm, service=params.get("service"))
    return None


class _TokenReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    token: str | None = None
    access_token: str | None = None
    expires_in: float | None = None


_TokenKey = tuple[str, str, str, str, str]  # registry, realm, service, scope, credential fingerprint


class AuthMemory:
    """What the client learnt about registries' auth: their challenges, and tokens per credential."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096) -> None:
        self.clock = clock
        self._challenges: Cache[str, Challenge] = Cache(max_entries, clock=clock)
        self._tokens: Cache[_TokenKey, str] = Cache(max_entries, clock=clock)
        self._lock = threading.Lock()

    def challenge(self, base_url: str) -> Challenge | None:
        return self._challenges.get(base_url)

    def remember(self, base_url: str, challenge: Challenge) -> None:
        self._challenges.put(base_url, challenge)

    def token(self, key: _TokenKey) -> str | None:
        return self._tokens.get(key)

    def store_token(self, key: _TokenKey, token: str, expires_in: float) -> None:
        # Renew a little early so a token does not expire between our check and the registry's.
        self._tokens.put(key, token, ttl_seconds=expires_in - min(10.0, expires_in / 10))

    def forget_token(self, key: _TokenKey) -> None:
        self._tokens.discard(key)


def denied(target: Target, credential: Credential | None, status: int, detail: str = "") -> str:
    supplied = "credentials were supplied" if credential is not None else "no credentials were supplied"
    extra = f" {detail}" if detail else ""
    return f"registry {target.domain} denied access to {target.repository} (HTTP {status}{extra}; {supplied})"


class RegistryAuth(httpx.Auth):
    """One registry, one credential (None: anonymous). A 401 from another origin (a redirect target
    such as a CDN) is not answered: credentials go only where the registry or its realm asked for them."""

    def __init__(self, target: Target, credential: Credential | None, memory: AuthMemory) -> None:
        self._target = target
        self._credential = credential
        self._memory = memory
        self._fingerprint = fingerprint(credential)

    def _token_key(self, challenge: Challenge) -> _TokenKey:
        return (self._target.base_url, challenge.realm, challenge.service or "", self._target.scope, self._fingerprint)

    def _known(self) -> tuple[str | None, _TokenKey | None]:
        """Authorization to send up front when this registry has challenged us before (saves a round trip)."""
        challenge = self._memory.challenge(self._target.base_url)
        if challenge is None:
            return None, None
        if challenge.scheme == "basic":
            return basic_authorization(self._credential), None
        key = self._token_key(challenge)
        token = self._memory.token(key)
        return (f"Bearer {token}", key) if token is not None else (None, None)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        authorization, used_key = self._known()
        if authorization is not None:
            request.headers["Authorization"] = authorization
        response = yield request
        final = response.extensions.get("apprelease_final_url", request.url)
        if response.status_code != 401 or final.host != request.url.host or final.port != request.url.port:
            return
        challenge = pick_challenge(response.headers)
        if challenge is None:
            raise Unauthorized(denied(self._target, self._credential, 401, "without a usable challenge"))
        self._memory.remember(self._target.base_url, challenge)
        if used_key is not None:
            self._memory.forget_token(used_key)  # the token we sent was refused (expired or revoked)
        if challenge.scheme == "basic":
            authorization = basic_authorization(self._credential)
            if authorization is None:
                detail = "requiring a username and password"
                raise Unauthorized(denied(self._target, self._credential, 401, detail))
        else:
            realm = self._realm(challenge)
            key = self._token_key(challenge)
            token = self._memory.token(key)
            if token is None:
                token_response = yield self._token_request(realm, challenge)
                token, expires_in = self._parse_token(token_response, challenge)
                self._memory.store_token(key, token, expires_in)
            authorization = f"Bearer {token}"
        request.headers["Authorization"] = authorization
        yield request

    def _realm(self, challenge: Challenge) -> httpx.URL:
        try:
            url = httpx.URL(challenge.realm)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise RegistryUnavailable(f"registry {self._target.domain} sent an invalid token realm") from None
        problem = self._target.rules.problem(url)
        if problem is not None:
            # Credentials would travel in clear text, or to a place the registry has no business sending us.
            raise RegistryUnavailable(
                f"registry {self._target.domain} sent token realm {url.scheme}://{url.host}, refused: {problem} "
                "(a token realm must use https, and lead to no link-local or loopback address, nor a private one "
                "unless the registry itself is in that network or the operator allows it)"
            )
        return url

    def _token_request(self, realm: httpx.URL, challenge: Challenge) -> httpx.Request:
        params = {"scope": self._target.scope}
        if challenge.service:
            params["service"] = challenge.service
        headers = {"Accept": "application/json"}
        credential = self._credential
        if credential is not None and credential.password is None and credential.identity_token is not None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": _secret(credential.identity_token),
                "client_id": _CLIENT_ID,
                **params,
            }
            return httpx.Request("POST", realm, headers=headers, data=form)
        basic = basic_authorization(credential)
        if basic is not None:
            headers["Authorization"] = basic
        return httpx.Request("GET", realm.copy_merge_params(params), headers=headers)

    def _parse_token(self, response: httpx.Response, challenge: Challenge) -> tuple[str, float]:
        target = self._target
        realm_host = httpx.URL(challenge.realm).host
        if response.status_code in (400, 401, 403):
            raise Unauthorized(
                denied(target, self._credential, response.status_code, f"from token service {realm_host}")
            )
        if response.status_code != 200:
            raise RegistryError(
                f"token service {realm_host} for registry {target.domain} returned HTTP {response.status_code}"
            )
        try:
            reply = _TokenReply.model_validate(jsonbounds.load(response.content, max_bytes=MAX_TOKEN_REPLY_BYTES))
        except (ValueError, ValidationError):
            raise unreachable(target.domain) from None
        token = reply.token or reply.access_token
        if token is None or not _TOKEN.fullmatch(token):
            raise RegistryUnavailable(f"token service {realm_host} for registry {target.domain} sent no token")
        expires_in = reply.expires_in if reply.expires_in is not None and reply.expires_in > 0 else None
        return token, min(expires_in or _DEFAULT_TOKEN_TTL, 24 * 3600.0)
