"""The newest resourceVersion this process has seen of each AppRelease, from its watch and its own writes, so
that a pass can read the AppRelease from the API server's watch cache without reading the past.

A GET with `resourceVersion=X` is "not older than X" (API concepts, "Semantics for get and list"): the API
server answers from its watch cache once that cache holds X or newer, without the etcd quorum read of a plain
GET. With X the newest version the operator knows (the event that woke the pass, or the pass's own last status
write), a pass reads its own writes and every change it was woken for, on one API server or several: what
`resourceVersion=0` ("any version") does not promise, and what an automatic rollback needs (a pass that read a
copy older than its own rollback would pin the failed version again before its conditional write fails).

Which of two versions is newer: the API server's own watch cache and client-go's reflector read etcd's
revisions as unsigned integers; the API conventions ask clients not to, because a storage other than etcd may
use other strings. So a version that is not a decimal integer is not kept: that AppRelease is read with a
plain (quorum) GET, as before.
"""

from __future__ import annotations

import threading

Key = tuple[str, str]

_MAX_DIGITS = 20  # a uint64 (etcd's revision); longer is not etcd's


class SeenVersions:
    """Thread-safe: the watch notes versions on the event loop, worker threads note their writes and read."""

    def __init__(self) -> None:
        self._newest: dict[Key, int] = {}
        self._lock = threading.Lock()

    def note(self, key: Key, resource_version: object) -> None:
        """`resource_version` of the AppRelease `key` was seen (an event, or a write's answer); kept if newer."""
        number = _number(resource_version)
        if number is None:
            return
        with self._lock:
            if number > self._newest.get(key, -1):
                self._newest[key] = number

    def newest(self, key: Key) -> str | None:
        """The newest version seen as the API server writes it, or None (read with a quorum GET)."""
        with self._lock:
            number = self._newest.get(key)
        return None if number is None else str(number)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._newest.pop(key, None)

    def __len__(self) -> int:
        return len(self._newest)


def _number(resource_version: object) -> int | None:
    if (
        isinstance(resource_version, str)
        and resource_version.isascii()
        and resource_version.isdigit()
        and len(resource_version) <= _MAX_DIGITS
    ):
        return int(resource_version)
    return None
