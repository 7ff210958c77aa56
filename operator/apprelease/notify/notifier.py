"""The notification step of a reconcile: send what status says is owed, then say what to record.

Send first, record after (the caller writes the status): a crash in between re-sends once, with the same
idempotency key. Within one operator process, a message a receiver already took is not sent again while
another receiver of the same outcome still fails (`_sent`), so only a restart can cause that one duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from cachetools import TTLCache

from apprelease.core import conditions as cond
from apprelease.core.api import AppRelease, AppReleaseStatus, NotifyEntry, NotifyType
from apprelease.core.limits import MAX_MESSAGE, truncate

from .due import Due, due, idempotency_key, mark, watermarks
from .endpoint import Endpoint, NotifyFailed
from .messages import About, render

__all__ = ["NOTIFICATION_FAILED", "Notifier", "SecretSource", "Step", "with_failure"]

log = logging.getLogger(__name__)

# A condition type of its own: Ready, Reconciling and Stalled never depend on a receiver.
NOTIFICATION_FAILED = "NotificationFailed"
RECEIVER_FAILED = "ReceiverFailed"
MAX_URL = 2048
MAX_TOKEN = 4096


class SecretSource(Protocol):
    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's decoded data, or None when it does not exist or cannot be read."""


@dataclass(frozen=True)
class Step:
    """What the step changed: the status to record, and why some message is still owed (None: nothing)."""

    status: AppReleaseStatus
    failure: str | None


class Notifier:
    def __init__(self, secrets: SecretSource, endpoint: Endpoint) -> None:
        self._secrets = secrets
        self._endpoint = endpoint
        # (idempotency key, receiver key) taken by a receiver and not yet recorded in status.
        self._sent: TTLCache[tuple[str, str], bool] = TTLCache(maxsize=10_000, ttl=6 * 3600)

    def run(self, ar: AppRelease, status: AppReleaseStatus) -> Step:
        receivers = [r for r in ar.spec.notify if r.type in NotifyType.__members__.values()]
        if not receivers and not status.notify_since:
            return Step(status, None)
        status = status.model_copy(update={"notify_since": watermarks(receivers, status) or None})
        owed = due(receivers, status, ar.spec.version)
        failures: list[str] = []
        for item in owed:
            problem = self._deliver(ar, item)
            if problem is not None:
                failures.append(f"{item.receiver.key}: {problem}")
        for item in owed:
            if all(self._taken(ar.uid, other) for other in owed if _same(other, item)):
                status = mark(status, item)
        return Step(status, truncate("; ".join(dict.fromkeys(failures)), MAX_MESSAGE) if failures else None)

    def _taken(self, uid: str, item: Due) -> bool:
        return (idempotency_key(uid, item.entry.revision, item.outcome), item.receiver.key) in self._sent

    def _deliver(self, ar: AppRelease, item: Due) -> str | None:
        key = idempotency_key(ar.uid, item.entry.revision, item.outcome)
        if (key, item.receiver.key) in self._sent:
            return None
        target = self._target(ar.namespace, item.receiver)
        if isinstance(target, str):
            return target
        url, token = target
        rendered = render(
            NotifyType(item.receiver.type), About(ar.namespace, ar.name, ar.uid), item.entry, item.outcome, key
        )
        headers = dict(rendered.headers)
        if token and item.receiver.type in (NotifyType.WEBHOOK, NotifyType.CLOUDEVENTS):
            headers["Authorization"] = f"Bearer {token}"
        try:
            self._endpoint.send(url, headers, rendered.body)
        except NotifyFailed as err:
            log.warning("%s/%s: notification %s to %s failed: %s", ar.namespace, ar.name, key, item.receiver.key, err)
            return str(err)
        log.info("%s/%s: notification %s sent to %s", ar.namespace, ar.name, key, item.receiver.key)
        self._sent[(key, item.receiver.key)] = True
        return None

    def _target(self, namespace: str, receiver: NotifyEntry) -> tuple[str, str | None] | str:
        """(url, token) from the receiver's Secret, or why not."""
        name = receiver.secret_ref.name
        data = self._secrets.get_secret_data(namespace, name)
        if data is None:
            return f"Secret {name} does not exist or cannot be read"
        url = _text(data.get("url"), MAX_URL)
        if not url:
            return f"Secret {name} has no key url (or it is over {MAX_URL} bytes)"
        return url, _text(data.get("token"), MAX_TOKEN)


def _same(a: Due, b: Due) -> bool:
    return a.entry.revision == b.entry.revision and a.outcome == b.outcome


def _text(raw: bytes | None, limit: int) -> str | None:
    if raw is None or len(raw) > limit:
        return None
    try:
        return raw.decode().strip() or None
    except UnicodeDecodeError:
        return None


def with_failure(status: AppReleaseStatus, failure: str | None, generation: int, now: str) -> AppReleaseStatus:
    """NotificationFailed True with the receivers' trouble, or no such condition once everything is sent."""
    if failure is None:
        kept = [c for c in status.conditions if c.type != NOTIFICATION_FAILED]
        return status if len(kept) == len(status.conditions) else status.model_copy(update={"conditions": kept})
    conditions = cond.set_condition(
        status.conditions, NOTIFICATION_FAILED, cond.TRUE, RECEIVER_FAILED, failure, generation, now
    )
    return status.model_copy(update={"conditions": conditions})
