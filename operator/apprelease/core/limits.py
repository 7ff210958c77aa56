"""Bounds on everything the operator writes into status, events and messages.

Values copied from images (labels), registries (error text) or tenants end up in an object etcd must store
(1.5 MiB at most) and users must read. Every such value passes through here, so that the worst-case status is
a known, small number (tests/test_limits.py computes it) instead of whatever a hostile image carries.
"""

from __future__ import annotations

import hashlib
import re

from apprelease.core.text import inert

MAX_MESSAGE = 1024  # condition messages and event messages
MAX_QUOTED = 80  # a foreign value (label, tag, header) quoted inside a message
MAX_FAILURE = 512  # a rollout failure kept in a history entry
MAX_HISTORY = 100  # spec.historyLimit's maximum (CRD and validation)
MAX_IMAGE = 255  # spec.image's maximum length (CRD)
MAX_VERSION = 128  # an image tag
MAX_DIGEST = len("sha512:") + 128
MAX_TIMESTAMP = len("2006-01-02T15:04:05Z")
MAX_RETRY_TOKEN = 64  # status.lastHandledRetry (the CRD's maxLength: an installed CRD is not upgraded by Helm)
# Platform children of an image index whose provenance is checked (each costs a manifest and a config read);
# an index listing more is refused. Docker Hub's official images list at most about a dozen.
MAX_PLATFORMS = 64
MAX_NAMESPACE = 63  # a namespace name is an RFC 1123 label (Kubernetes: 63 characters)
MAX_PROMOTED_FROM = MAX_NAMESPACE + 1 + 253 + 1 + 19  # <namespace>/<name>#<revision>
MAX_NOTIFY = 10  # spec.notify entries (CRD maxItems), hence status.notifySince keys
MAX_NOTIFY_KEY = len("cloudevents/") + 253  # a notifySince key: <type>/<Secret name>

_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_ELLIPSIS = "…"
_HASHED = "sha256:"


def truncate(text: str, limit: int) -> str:
    """The text, cut to at most `limit` characters (an ellipsis marks the cut)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS


def quoted(value: object, limit: int = MAX_QUOTED) -> str:
    """A foreign value for a message: shown inert on one line (`apprelease.core.text`), bounded, in quotes."""
    return f"'{truncate(inert(value), limit)}'"


def shown(value: object, limit: int) -> str:
    """Foreign text kept as it is said (no quotes): inert on one line, at most `limit` characters."""
    return truncate(inert(value), limit)


def message(text: str) -> str:
    """A condition or Event message: inert on one line, at most MAX_MESSAGE characters.

    Parts already passed through `quoted` are not escaped again (`inert` is idempotent).
    """
    return shown(text, MAX_MESSAGE)


def retry_token(value: str | None) -> str | None:
    """What status.lastHandledRetry records for an apprelease.dev/retry value; None for none.

    Each new value must act once, so values are compared in full. A value of at most MAX_RETRY_TOKEN characters
    is kept as it is (readable: `apprelease retry` writes a timestamp, and a status written by an earlier
    operator still matches); a longer one becomes "sha256:" and the first 57 hex digits (228 bits) of the SHA-256
    of the whole value, which fits the CRD's 64 characters. A value that itself starts with "sha256:" is always
    hashed, so a stored token has one meaning. Two values sharing their first 64 characters are different tokens.
    """
    if not value:
        return None
    if len(value) <= MAX_RETRY_TOKEN and not value.startswith(_HASHED):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return _HASHED + digest[: MAX_RETRY_TOKEN - len(_HASHED)]


def git_commit(value: str | None) -> str | None:
    """The org.opencontainers.image.revision label as a git commit, or None when it is not one.

    A commit is 7 to 64 hexadecimal characters (SHA-1 abbreviations up to SHA-256); anything else (a branch
    name, a 2 MiB string) is not copied into status.
    """
    if value is None:
        return None
    candidate = value.strip().lower()
    return candidate if _GIT_COMMIT.match(candidate) else None
