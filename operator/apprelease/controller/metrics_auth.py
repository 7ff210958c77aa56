"""Bearer-token protection of /metrics: the token is a file (a mounted Secret), re-read when it changes.

The same scheme as Prometheus' `authorization: {type: Bearer, credentials: <Secret key>}` on a ServiceMonitor
or PodMonitor, without kube-rbac-proxy's extra container and TokenReview round trip per scrape.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 4096


class TokenError(Exception):
    """The token file cannot serve as a token (missing, empty, too large)."""


class TokenFile:
    """A bearer token kept in a file; `check` compares in constant time (`hmac.compare_digest`).

    Kubernetes updates a mounted Secret by swapping a symlink, so a changed (inode, mtime, size) triggers a
    re-read; the old token stays valid until a new one has been read successfully.
    Raises TokenError at construction when the file does not hold a usable token (fail at start, never serve
    metrics unprotected by accident).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token = self._read()

    def _read(self) -> bytes:
        try:
            with open(self._path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read(MAX_TOKEN_BYTES + 1)
        except OSError as err:
            raise TokenError(f"metrics token file {self._path}: {err.strerror or err}") from err
        if len(data) > MAX_TOKEN_BYTES:
            raise TokenError(f"metrics token file {self._path} is over {MAX_TOKEN_BYTES} bytes")
        token = data.strip()
        if not token:
            raise TokenError(f"metrics token file {self._path} is empty")
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return token

    def _refresh(self) -> None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return  # mid-swap or gone: keep the token we have
        if (stat.st_ino, stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        try:
            self._token = self._read()
        except TokenError as err:
            log.warning("keeping the previous metrics token: %s", err)

    def check(self, authorization: str | None) -> bool:
        """True when `authorization` (the header's value) is `Bearer <the token>`."""
        with self._lock:
            self._refresh()
            token = self._token
        if authorization is None:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token)
