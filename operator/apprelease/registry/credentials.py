"""Registry credentials read from Docker config JSON (``.dockerconfigjson`` / ``~/.docker/config.json``),
chosen for an image exactly as the kubelet chooses them (:class:`Keyring`), so that the operator resolves a
tag with the credential the node will pull it with.

Secret values are held in ``SecretStr`` so that reprs, logs and validation
errors show ``**********`` instead of the secret, and no error raised here
quotes the document it was given.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from . import jsonbounds

__all__ = [
    "Credential",
    "Keyring",
    "effective",
    "keyring_key",
    "lookup",
    "normalize_registry_host",
    "parse_docker_config",
    "urls_match",
]

# The key Docker Hub's entry is filed under ("https://index.docker.io/v1/" and "index.docker.io" both land
# here); the kubelet gives it to a Docker Hub image only when no other key matches.
_DEFAULT_REGISTRY_KEY = "index.docker.io"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OPTIONAL_PORT = re.compile(r"(:[0-9]*)?")
# Characters Go's url.Parse accepts in a host (shouldEscape in encodeHost mode), plus non-ASCII.
_HOST_CHARS = re.compile(r"[A-Za-z0-9\-_.~!$&'()*+,;=:\[\]<>\"\x80-\U0010ffff]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A Secret holds at most 1 MiB; the bound also keeps hostile JSON (deep, or millions of items) cheap.
_MAX_CONFIG_BYTES = 1024 * 1024


class Credential(BaseModel):
    """Credentials for one registry. ``repr``/``str`` mask the secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str | None = None
    password: SecretStr | None = None
    identity_token: SecretStr | None = None


def effective(credential: Credential | None) -> Credential | None:
    """`credential`, or None when it carries nothing to send (an anonymous request)."""
    if credential is None:
        return None
    if credential.username is None and credential.password is None and credential.identity_token is None:
        return None
    return credential


def _load(data: bytes | str | Mapping[str, object]) -> Mapping[str, object]:
    if isinstance(data, Mapping):
        return data
    try:
        loaded = jsonbounds.load(data, max_bytes=_MAX_CONFIG_BYTES)
    except (ValueError, TypeError) as exc:
        # The messages name limits, never content: a pull Secret holds passwords.
        raise ValueError(f"invalid docker config: {exc}") from None
    if not isinstance(loaded, Mapping):
        raise ValueError("invalid docker config: top level must be a JSON object")
    return loaded


def _optional_str(entry: Mapping[str, object], field: str, host: str) -> str | None:
    value = entry.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"invalid docker config: field {field!r} for registry {host!r} must be a string")
    return value


def _decode_auth(encoded: str, host: str) -> tuple[str, str]:
    compact = "".join(encoded.split())
    # Some tools drop the base64 padding; Docker itself always writes it.
    compact += "=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ValueError(
            f"invalid docker config: field 'auth' for registry {host!r} is not valid base64 of UTF-8 text"
        ) from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError(f"invalid docker config: field 'auth' for registry {host!r} must encode 'username:password'")
    return username, password


def _credential(entry: Mapping[str, object], host: str) -> Credential | None:
    username = _optional_str(entry, "username", host)
    password = _optional_str(entry, "password", host)
    auth = _optional_str(entry, "auth", host)
    identity_token = _optional_str(entry, "identitytoken", host)
    if auth is not None:
        # Docker lets "auth" override explicit username/password when both are present.
        username, password = _decode_auth(auth, host)
    if username is None and password is None and identity_token is None:
        # Entries managed by a credential helper are empty here; nothing to use.
        return None
    return Credential(
        username=username or None,
        password=SecretStr(password) if password is not None else None,
        identity_token=SecretStr(identity_token) if identity_token is not None else None,
    )


def _entries(data: bytes | str | Mapping[str, object]) -> list[tuple[str, Credential]]:
    """(keyring key, credential) of every usable entry, in document order.

    Keys the kubelet cannot parse are skipped, as it skips them; entries without credentials (managed by a
    credential helper) are skipped too. Raises ValueError for malformed documents; messages name the
    registry and field but never the secret material.
    """
    config = _load(data)
    auths = config.get("auths")
    if auths is None:
        return []
    if not isinstance(auths, Mapping):
        raise ValueError("invalid docker config: 'auths' must be a JSON object")
    entries: list[tuple[str, Credential]] = []
    for raw_key, entry in auths.items():
        if not isinstance(raw_key, str):
            raise ValueError("invalid docker config: registry keys in 'auths' must be strings")
        if not isinstance(entry, Mapping):
            raise ValueError(f"invalid docker config: entry for registry {raw_key!r} must be a JSON object")
        credential = _credential(entry, raw_key)
        try:
            key = keyring_key(raw_key)
        except ValueError:
            continue
        if credential is not None and key:
            entries.append((key, credential))
    return entries


def parse_docker_config(data: bytes | str | Mapping[str, object]) -> dict[str, Credential]:
    """Credentials per keyring key (see :func:`keyring_key`: ``host[:port][/path]``) of one document.

    Where several spellings land on one key (``https://index.docker.io/v1/`` and ``index.docker.io``),
    the first in the document is kept here; :class:`Keyring` keeps them all. Raises ValueError for
    malformed input; messages name the registry and field but never the secret material.
    """
    result: dict[str, Credential] = {}
    for key, credential in _entries(data):
        result.setdefault(key, credential)
    return result


def keyring_key(key: str) -> str:
    """The key the kubelet files a ``.dockerconfigjson`` entry under (``BasicDockerKeyring.Add``).

    ``https://`` is assumed unless the key starts with ``https://`` or ``http://``; the scheme and any
    userinfo are dropped; a path starting with ``/v1/`` or ``/v2/`` loses that prefix (Docker's
    ``https://index.docker.io/v1/`` means the host); any other path but ``/`` is kept
    (``registry.example.com/team-a``). Case is kept: the kubelet compares case-sensitively.
    Raises ValueError for a key Go's URL parser refuses (the kubelet ignores such entries).
    """
    host, path = _split_url(key if key.startswith(("https://", "http://")) else "https://" + key)
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def normalize_registry_host(key: str) -> str:
    """Only the ``host[:port]`` of a config key as :func:`keyring_key` reads it; ValueError if unparsable."""
    return keyring_key(key).split("/", 1)[0]


def _split_url(url: str) -> tuple[str, str]:
    """(host[:port], unescaped path) of ``scheme://...`` as Go's ``url.Parse`` reads it; ValueError where
    it fails. Our own parser: ``urllib.parse`` refuses ``[`` in a host (a Go glob class) and accepts
    characters Go refuses (``^``, ``|``, spaces), so keys would be read differently from the kubelet."""
    rest = url.split("://", 1)[1].partition("#")[0].partition("?")[0]
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        tail = host[end + 1 :] if end > 0 else "!"
    else:
        tail = host[host.rfind(":") :] if ":" in host else ""
    if (
        _OPTIONAL_PORT.fullmatch(tail) is None
        or _HOST_CHARS.fullmatch(host) is None
        or _BAD_ESCAPE.search(path)
        or _CONTROL.search(url)
    ):
        raise ValueError("not a URL the kubelet can parse")
    return host, urllib.parse.unquote("/" + path if slash else "")


def _split_host_port(host: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``, falling back (as the kubelet does) to the whole host and no port."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0 and host[end + 1 : end + 2] == ":":
            return host[1:end], host[end + 2 :]
        return host, ""
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, ""


# A glob token: ("*",), ("?",), ("=", char) or ("[", negated, ((low, high), ...)).
_Char = tuple[Literal["?"]] | tuple[Literal["="], str] | tuple[Literal["["], bool, tuple[tuple[str, str], ...]]
_Token = tuple[Literal["*"]] | _Char


def _glob_tokens(pattern: str) -> list[_Token] | None:
    """Go's ``path/filepath.Match`` syntax, consecutive stars folded; None for a malformed pattern."""
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            klass = _glob_class(pattern, i + 1)
            if klass is None:
                return None
            token, i = klass
            tokens.append(token)
            continue
        if char == "\\":
            i += 1
            if i == len(pattern):
                return None
            tokens.append(("=", pattern[i]))
        elif char in "*?":
            if not (char == "*" and tokens and tokens[-1] == ("*",)):
                tokens.append(("*",) if char == "*" else ("?",))
        else:
            tokens.append(("=", char))
        i += 1
    return tokens


def _glob_class(pattern: str, i: int) -> tuple[_Token, int] | None:
    """The ``[...]`` class whose body starts at ``i``: (token, index after ``]``), None if malformed."""
    negated = pattern[i : i + 1] == "^"
    i += negated
    ranges: list[tuple[str, str]] = []
    while not (pattern[i : i + 1] == "]" and ranges):
        low = _class_char(pattern, i)
        if low is None:
            return None
        lo, i = low
        hi = lo
        if pattern[i : i + 1] == "-":
            high = _class_char(pattern, i + 1)
            if high is None or high[0] < lo:
                return None
            hi, i = high
        ranges.append((lo, hi))
    return ("[", negated, tuple(ranges)), i + 1


def _class_char(pattern: str, i: int) -> tuple[str, int] | None:
    """One character of a class (Go's ``getEsc``): an unescaped ``-`` or ``]`` here is malformed."""
    if i >= len(pattern) or pattern[i] in "-]":
        return None
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            return None
    return pattern[i], i + 1


def _token_matches(token: _Char, char: str) -> bool:
    if token[0] == "?":
        return char != "/"
    if token[0] == "=":
        return char == token[1]
    negated, ranges = token[1], token[2]
    return any(lo <= char <= hi for lo, hi in ranges) != negated and char != "/"


def glob_match(pattern: str, label: str) -> bool:
    """Go's ``filepath.Match(pattern, label)`` for one DNS label; a malformed pattern matches nothing.

    Our own code, not ``fnmatch``: Go negates a class with ``^`` (fnmatch with ``!``) and refuses malformed
    patterns. It walks the set of reachable positions instead of backtracking, so a hostile key of many
    stars costs at most (tokens x label length) steps, never exponential time.
    """
    tokens = _glob_tokens(pattern)
    if tokens is None or sum(t != ("*",) for t in tokens) > len(label):
        return False
    reachable = {0}
    for token in tokens:
        if token[0] == "*":
            reachable = set(range(min(reachable), len(label) + 1))
        else:
            reachable = {p + 1 for p in reachable if p < len(label) and _token_matches(token, label[p])}
        if not reachable:
            return False
    return len(label) in reachable


def urls_match(key: str, image: str) -> bool:
    """Whether a keyring key matches an image repository (``domain/path``): the kubelet's ``URLsMatch``.

    The same number of DNS labels, each matched by the key's glob (a ``*`` stays inside one label, so
    ``*.example.com`` matches ``a.example.com`` but neither ``example.com`` nor ``a.b.example.com``), the
    same port (a key without a port matches only images without one), and the key's path a prefix of the
    image's path (a string prefix, as in the kubelet).
    """
    try:
        key_host, key_path = _split_url("https://" + key)
        image_host, image_path = _split_url("https://" + image)
    except ValueError:
        return False
    key_name, key_port = _split_host_port(key_host)
    image_name, image_port = _split_host_port(image_host)
    key_labels, image_labels = key_name.split("."), image_name.split(".")
    if key_port != image_port or len(key_labels) != len(image_labels) or not image_path.startswith(key_path):
        return False
    return all(glob_match(g, label) for g, label in zip(key_labels, image_labels, strict=True))


def _is_docker_hub(image: str) -> bool:
    """The kubelet's ``isDefaultRegistryMatch``: does this image come from Docker Hub?"""
    first, slash, _ = image.partition("/")
    if not first:
        return False
    if not slash or first in ("docker.io", "index.docker.io"):
        return True
    return not any(c in first for c in ".:")


class Keyring:
    """Credentials of ``.dockerconfigjson`` documents, looked up exactly as the kubelet looks them up.

    The kubelet (``pkg/credentialprovider/keyring.go``, ``BasicDockerKeyring``) files each entry under
    :func:`keyring_key`, keeps the keys reverse-sorted (so ``registry.example.com/team-b`` comes before
    ``registry.example.com``, and a plain host before a ``*.`` glob of it) and, for an image, returns the
    credentials of *every* key that matches it (:func:`urls_match`), in that order; only when none matches does a
    Docker Hub image get the ``index.docker.io`` entry (``https://index.docker.io/v1/``). The Pod's
    ``imagePullSecrets`` are added in their order into one keyring; under one key the earlier document's
    credential comes first. Source: Kubernetes docs, Concepts > Containers > Images, "Interpretation of
    config.json".
    """

    def __init__(self) -> None:
        self._creds: dict[str, list[Credential]] = {}
        self._index: list[str] = []

    def add(self, data: bytes | str | Mapping[str, object]) -> None:
        """Add one Docker config document; a ValueError (naming no secret) leaves the keyring unchanged."""
        self.file(_entries(data))

    def file(self, entries: Iterable[tuple[str, Credential]]) -> None:
        """Add (keyring key, credential) pairs, keys already as :func:`keyring_key` returns them."""
        for key, credential in entries:
            self._creds.setdefault(key, []).append(credential)
        self._index = sorted(self._creds, reverse=True)

    def lookup(self, image: str) -> list[Credential]:
        """Every credential the kubelet tries for ``image`` (``domain/path``, no tag), in its order."""
        found = [c for key in self._index if urls_match(key, image) for c in self._creds[key]]
        if not found and _is_docker_hub(image):
            found = list(self._creds.get(_DEFAULT_REGISTRY_KEY, []))
        return found

    def __len__(self) -> int:
        return sum(len(c) for c in self._creds.values())


def lookup(credentials: Mapping[str, Credential], image: str) -> Credential | None:
    """The first credential the kubelet would try for ``image`` (``domain/path``) among ``credentials``
    (config or keyring keys to credential, as :func:`parse_docker_config` returns), or None."""
    keyring = Keyring()
    entries = []
    for key, credential in credentials.items():
        try:
            entries.append((keyring_key(key), credential))
        except ValueError:
            continue
    keyring.file(entries)
    found = keyring.lookup(image)
    return found[0] if found else None
