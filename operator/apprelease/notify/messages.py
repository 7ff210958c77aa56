"""Each receiver type's request body: short, the same words as the Events the operator posts.

- slack: an incoming webhook's `{"text": ...}` (Slack, "Sending messages using incoming webhooks").
- msteams: a message with one Adaptive Card attachment (Teams/Power Automate workflow webhooks accept this,
  `application/vnd.microsoft.card.adaptive`, card version 1.4).
- webhook: our own JSON document (fields below), idempotency key in two headers.
- cloudevents: a CloudEvents 1.0 event in structured mode (`application/cloudevents+json`), built by the
  `cloudevents` package; its `id` is the idempotency key, so receivers can drop a re-send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from apprelease.core.api import API_VERSION, PLURAL, HistoryEntry, NotifyOutcome, NotifyType
from apprelease.core.limits import MAX_MESSAGE, truncate

__all__ = ["EVENT_TYPE_PREFIX", "About", "Rendered", "render", "text"]

EVENT_TYPE_PREFIX = "dev.apprelease.revision."
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Apprelease-Idempotency-Key")


@dataclass(frozen=True)
class About:
    """The AppRelease a message is about."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Rendered:
    headers: dict[str, str]
    body: bytes


def text(entry: HistoryEntry, outcome: NotifyOutcome) -> str:
    """The one-line message, as the matching Event says it."""
    what = f"{entry.version} ({entry.digest})"
    if outcome == NotifyOutcome.AWAITING_PROMOTION:
        line = f"revision {entry.revision}: {entry.version} awaits promotion: {entry.failure}"
    elif outcome == NotifyOutcome.PROMOTION_REVOKED:
        line = f"revision {entry.revision}: {entry.version} promotion revoked: {entry.failure}"
    elif outcome == NotifyOutcome.ROLLED_BACK:
        origin = f", recorded in revision {entry.restored_from}" if entry.restored_from is not None else ""
        line = f"revision {entry.revision}: rolled back to {what}{origin}"
    elif outcome == NotifyOutcome.FAILED:
        line = f"revision {entry.revision}: {what} failed: {entry.failure or 'no detail recorded'}"
    else:
        line = f"revision {entry.revision}: {what} {outcome.value.lower()}"
    return truncate(line, MAX_MESSAGE)


def _document(about: About, entry: HistoryEntry, outcome: NotifyOutcome, key: str) -> dict[str, object]:
    return {
        "id": key,
        "apiVersion": API_VERSION,
        "namespace": about.namespace,
        "name": about.name,
        "uid": about.uid,
        "revision": entry.revision,
        "outcome": outcome.value,
        "version": entry.version,
        "digest": entry.digest,
        "message": text(entry, outcome),
    }


def _teams_card(title: str, line: str) -> dict[str, object]:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": line, "wrap": True},
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def render(kind: NotifyType, about: About, entry: HistoryEntry, outcome: NotifyOutcome, key: str) -> Rendered:
    """The headers and body of one message; `key` is `<uid>/<revision>/<outcome>`."""
    keyed = dict.fromkeys(IDEMPOTENCY_HEADERS, key)
    title = f"{about.namespace}/{about.name} {outcome.value}"
    if kind == NotifyType.CLOUDEVENTS:
        event = CloudEvent(
            attributes={
                "id": key,
                "source": f"/apis/{API_VERSION}/namespaces/{about.namespace}/{PLURAL}/{about.name}",
                "type": EVENT_TYPE_PREFIX + outcome.value.lower(),
                "subject": str(entry.revision),
                "datacontenttype": "application/json",
            },
            data=_document(about, entry, outcome, key),
        )
        message = to_structured_event(event)
        return Rendered({**message.headers, **keyed}, message.body)
    if kind == NotifyType.SLACK:
        body: dict[str, object] = {"text": f"{title}: {text(entry, outcome)}"}
    elif kind == NotifyType.MSTEAMS:
        body = _teams_card(title, text(entry, outcome))
    else:
        body = _document(about, entry, outcome, key)
    return Rendered({"Content-Type": "application/json", **keyed}, json.dumps(body).encode())
