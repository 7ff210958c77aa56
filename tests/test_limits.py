"""Status is bounded by construction: the worst case at every maximum stays far below etcd's object limit."""

from __future__ import annotations

import enum
import json
import typing
from typing import Any

import httpx
import pytest

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core import limits
from apprelease.core.api import AppReleaseStatus, Condition, HistoryEntry, NotifyOutcome
from apprelease.core.conditions import READY, RECONCILING, STALLED, Reason, set_condition
from apprelease.notify.notifier import NOTIFICATION_FAILED
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.trust.policy import MAX_EVIDENCE
from tests.conftest import Clock, FakeCluster, FakeRegistry, World, assert_stalled, deployment

WORST_CASE_BUDGET = 256 * 1024  # the README: the worst-case status stays under 256 KiB

# The longest value each string field can hold. A new field without an entry here fails the test below: give it
# a bound in apprelease.core.limits first, then list it.
STRING_BOUNDS: dict[str, int] = {
    "image": limits.MAX_IMAGE + 1 + limits.MAX_DIGEST,  # status.image is repository@digest
    "version": limits.MAX_VERSION,
    "digest": limits.MAX_DIGEST,
    "short_digest": 12,
    "git_commit": 64,
    "deployed_at": limits.MAX_TIMESTAMP,
    "bake_started_at": limits.MAX_TIMESTAMP,
    "succeeded_at": limits.MAX_TIMESTAMP,
    "paused_at": limits.MAX_TIMESTAMP,
    "promoted_from": limits.MAX_PROMOTED_FROM,
    "failure": limits.MAX_FAILURE,
    "last_handled_retry": limits.MAX_RETRY_TOKEN,
    "source": len("Registry"),
    "outcome": len("InProgress"),
    "cause": len("AutoRollback"),
    "verified_by": MAX_EVIDENCE,
}


def _enum(annotation: Any) -> type[enum.Enum] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


def _fill(model: type[Any], overrides: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in overrides:
            values[field.alias or name] = overrides[name]
            continue
        annotation = str(field.annotation)
        kind = _enum(field.annotation)
        if kind is not None:
            values[field.alias or name] = max((m.value for m in kind), key=lambda v: len(str(v)))
        elif "str" in annotation:
            assert name in STRING_BOUNDS, f"{model.__name__}.{name} has no bound: add one to core.limits"
            values[field.alias or name] = "x" * STRING_BOUNDS[name]
        elif "int" in annotation:
            values[field.alias or name] = 2**62
    return values


def _raw(model: type[Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return _fill(model, overrides)


def test_worst_case_status_is_under_budget() -> None:
    every_outcome = [o.value for o in NotifyOutcome]  # `notified` holds each outcome at most once
    entry = _raw(HistoryEntry, {"image": "x" * limits.MAX_IMAGE, "notified": every_outcome})
    conditions = [
        {
            "type": t,
            "status": "False",
            "reason": "x" * 32,
            "message": "m" * limits.MAX_MESSAGE,
            "observedGeneration": 2**62,
            "lastTransitionTime": "x" * limits.MAX_TIMESTAMP,
        }
        for t in (READY, RECONCILING, STALLED, NOTIFICATION_FAILED)
    ]
    since = {f"{i:0{limits.MAX_NOTIFY_KEY}d}": 2**62 for i in range(limits.MAX_NOTIFY)}
    # historyLimit + 1: the newest Succeeded entry is kept while a newer one is not yet Succeeded.
    status = _raw(
        AppReleaseStatus,
        {
            "history": [entry] * (limits.MAX_HISTORY + 1),
            "conditions": conditions,
            "notify_since": since,
            "notified_ahead": {"revision": 2**62, "outcomes": ["AwaitingPromotion", "PromotionRevoked"]},
        },
    )
    size = len(json.dumps({"status": status}).encode())
    assert size < WORST_CASE_BUDGET, f"worst-case status is {size} bytes"
    # The model accepts it: these are the fields the operator really writes.
    assert len(AppReleaseStatus.model_validate(status).history) == limits.MAX_HISTORY + 1


def test_condition_messages_are_capped() -> None:
    conditions: list[Condition] = set_condition([], READY, "False", "R", "y" * 10_000_000, 1, "now")
    assert len(conditions[0].message) == limits.MAX_MESSAGE
    assert conditions[0].message.endswith("…")


@pytest.mark.parametrize(
    ("label", "commit"),
    [
        ("0f3c2e1", "0f3c2e1"),
        ("0F3C2E1A9B7D", "0f3c2e1a9b7d"),
        ("a" * 40, "a" * 40),
        ("a" * 64, "a" * 64),
        ("a" * 65, None),
        ("abc123", None),
        ("main", None),
        ("0f3c2e1\n", "0f3c2e1"),
        ("0f3c2e1; rm", None),
        ("a" * 2_000_000, None),
        (None, None),
    ],
)
def test_git_commit_label_is_validated(label: str | None, commit: str | None) -> None:
    assert limits.git_commit(label) == commit


def test_quoted_values_are_bounded_and_inert() -> None:
    text = limits.quoted("\x1b[2J" + "z" * 10_000)
    assert len(text) == limits.MAX_QUOTED + 2 and "\x1b" not in text and text.startswith("'\\x1b[2J")


@pytest.fixture
def world() -> World:
    cluster, registry, clock = FakeCluster(deployments={"web": deployment("web")}), FakeRegistry(), Clock()
    client = RegistryClient(RegistrySettings(max_attempts=1), transport=httpx.MockTransport(registry))
    return World(cluster, registry, Reconciler(cluster, client, monotonic=clock), clock)


def test_huge_revision_label_is_dropped_with_a_warning(world: World) -> None:
    digest = world.registry.push(
        "v1", {"org.opencontainers.image.version": "v1", "org.opencontainers.image.revision": "r" * 2_000_000}
    )
    world.create("v1")
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    status = world.status()
    assert status.digest == digest and status.git_commit is None
    assert all(e.git_commit is None for e in status.history)
    warnings = world.events("LabelRejected")
    assert len(warnings) == 1 and warnings[0].type == "Warning" and len(warnings[0].message) < 400
    assert len(json.dumps(world.raw_status())) < 8 * 1024


def test_huge_version_label_mismatch_message_is_bounded(world: World) -> None:
    world.registry.push("v1", {"org.opencontainers.image.version": "v" * 2_000_000})
    world.create("v1")
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.PROVENANCE_MISMATCH)
    assert len(json.dumps(world.raw_status())) < 8 * 1024
