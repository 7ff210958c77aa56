"""The spec is checked once into a typed ReleaseSpec; any shape the CRD schema would refuse is InvalidSpec.

Without the CRD (or with an old one) the API server stores whatever a client sends: a spec that is a list, a
string or null, or fields of the wrong JSON type. Each must become Stalled `InvalidSpec` with a message, patch
nothing and ask no registry, never an exception retried forever.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from apprelease.controller.reconciler import Result
from apprelease.core.api import AppRelease, AppReleaseSpec, OnFailure, Provenance
from apprelease.core.conditions import READY, STALLED, Problem, Reason, ReasonClass
from apprelease.core.spec import ReleaseSpec, WorkloadRef
from apprelease.core.validation import check_spec
from apprelease.core.workloads import Kind
from tests.conftest import IMAGE, NAME, NS, World

DIGEST = "sha256:" + "a" * 64
VALID: dict[str, Any] = {
    "image": IMAGE,
    "version": "v1",
    "digest": DIGEST,
    "workloads": [{"kind": "Deployment", "name": "web", "containers": ["web"]}],
    "imagePullSecrets": [{"name": "pull"}],
    "provenance": "IfPresent",
    "historyLimit": 10,
    "suspend": False,
    "rollout": {"timeoutSeconds": 600, "onFailure": "Rollback"},
}
# A JSON value of every type: the generator picks one whose type differs from the field's.
SAMPLES: list[Any] = [None, True, False, 0, 7, -1, 2.5, "", "x", "Deployment", [], [1], ["a"], [{}], {}, {"a": 1}]
# Where a wrong type can go: a path into VALID, and the JSON types the schema allows there.
PATHS: list[tuple[tuple[str | int, ...], tuple[type, ...]]] = [
    (("image",), (str,)),
    (("version",), (str,)),
    (("digest",), (str, type(None))),
    (("workloads",), (list,)),
    (("workloads", 0), (dict,)),
    (("workloads", 0, "kind"), (str,)),
    (("workloads", 0, "name"), (str,)),
    (("workloads", 0, "containers"), (list, type(None))),
    (("imagePullSecrets",), (list,)),
    (("imagePullSecrets", 0), (dict,)),
    (("imagePullSecrets", 0, "name"), (str,)),
    (("provenance",), (str,)),
    (("historyLimit",), (int,)),
    (("suspend",), (bool,)),
    (("rollout",), (dict,)),
    (("rollout", "timeoutSeconds"), (int,)),
    (("rollout", "onFailure"), (str,)),
]


def _json_type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON booleans are not integers
        return bool in allowed
    if int in allowed and isinstance(value, int):
        return True
    return isinstance(value, tuple(t for t in allowed if t not in (bool, int)))


def _replace(spec: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def wrong_specs(seed: int, count: int) -> list[Any]:
    """Specs the CRD schema refuses: non-objects, and VALID with one or two values of a wrong JSON type."""
    rng = random.Random(seed)
    specs: list[Any] = [None, [], [VALID], "spec", "", 0, 1.5, True, [[{}]]]
    while len(specs) < count:
        spec: dict[str, Any] = VALID
        for path, allowed in rng.sample(PATHS, rng.choice([1, 2])):
            try:
                spec = _replace(spec, path, rng.choice([v for v in SAMPLES if not _json_type_ok(v, allowed)]))
            except (KeyError, IndexError, TypeError):
                continue  # the parent was already replaced by a scalar: one wrong value is enough
        if spec is not VALID:
            specs.append(spec)
    return specs


def test_the_valid_spec_is_valid(world: World) -> None:
    digest = world.registry.release("v1")
    world.cluster.appreleases[NAME] = _release({**VALID, "digest": digest})
    world.reconcile()
    assert world.condition(STALLED) == ("False", "NotStalled")
    assert world.cluster.patched() == ["deployment/web"]  # the generator's base is deployable: only its faults stall


@pytest.mark.parametrize("seed", range(4))
def test_every_spec_of_a_wrong_shape_is_invalid_spec_and_patches_nothing(world: World, seed: int) -> None:
    for raw in wrong_specs(seed, 60):
        world.cluster.appreleases[NAME] = _release(raw)
        world.reset_records()
        result = world.reconcile()
        assert result == Result() and result.stalled, raw
        status, reason = world.condition(STALLED)
        assert (status, reason) == ("True", Reason.INVALID_SPEC), raw
        message = next(c.message for c in world.status().conditions if c.type == READY)
        assert message.startswith("spec"), (raw, message)
        assert world.cluster.patched() == [], raw
        assert world.registry.requests == [], raw
        assert [e.reason for e in world.events()] == [Reason.INVALID_SPEC], raw


@pytest.mark.parametrize("raw", [None, [], ["image"], "registry.example.com/shop/web", 3])
def test_a_spec_that_is_not_an_object_says_so(raw: Any) -> None:
    problem = check_spec(AppRelease.from_k8s({"metadata": {"name": NAME}, "spec": raw}).spec)
    assert problem == Problem(
        Reason.INVALID_SPEC, "spec must be an object (is the AppRelease CRD installed and current?)"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("historyLimit", "10"), ("historyLimit", True), ("historyLimit", 10.0), ("suspend", "yes"), ("workloads", "web")],
)
def test_a_value_the_schema_refuses_is_not_coerced(field: str, value: Any) -> None:
    problem = check_spec(AppRelease.from_k8s({"metadata": {}, "spec": {**VALID, field: value}}).spec)
    assert isinstance(problem, Problem)
    assert problem.reason == Reason.INVALID_SPEC
    assert f"spec.{field}: wrong type" in problem.message


def test_check_spec_returns_the_typed_value_with_defaults() -> None:
    raw = {"image": "nginx", "version": "1.27", "workloads": [{"name": "web"}]}
    checked = check_spec(AppReleaseSpec.model_validate(raw))
    assert isinstance(checked, ReleaseSpec)
    assert checked == ReleaseSpec(
        image="nginx",
        repository=checked.repository,
        version="1.27",
        digest=None,
        workloads=(WorkloadRef(Kind.DEPLOYMENT, "web", None),),
    )
    assert checked.repository.repository == "docker.io/library/nginx"
    assert str(checked.tagged) == "docker.io/library/nginx:1.27"
    assert checked.pinned(DIGEST) == f"nginx@{DIGEST}"
    assert (checked.provenance, checked.on_failure) == (Provenance.IF_PRESENT, OnFailure.ROLLBACK)
    assert (checked.history_limit, checked.timeout_seconds, checked.suspend) == (10, 600, False)


def test_every_reason_has_a_class() -> None:
    assert {r for r in Reason if r.stalled} == {
        Reason.INVALID_SPEC,
        Reason.MUTABLE_REFERENCE,
        Reason.PROVENANCE_MISMATCH,
        Reason.DIGEST_MISMATCH,
        Reason.REGISTRY_NOT_ALLOWED,
        Reason.UNSUPPORTED_MANIFEST,
        Reason.PROMOTION_REVOKED,
        Reason.PROMOTION_SOURCE_NOT_ALLOWED,
        Reason.SIGNATURE_INVALID,
        Reason.SIGNATURE_UNTRUSTED,
    }
    assert Reason.AWAITING_PROMOTION.reason_class == ReasonClass.RETRIED
    assert Reason.SIGNATURE_MISSING.reason_class == ReasonClass.RETRIED  # CI may sign a moment after pushing
    assert {r for r in Reason if r.failed_rollout} == {Reason.ROLLOUT_FAILED, Reason.ROLLED_BACK}
    assert Reason.TAG_NOT_FOUND.reason_class == ReasonClass.RETRIED
    assert Reason.SUCCEEDED.reason_class == ReasonClass.READY
    assert all(r.value[0].isupper() and r.value.isalnum() for r in Reason)  # CamelCase (API conventions)


def _release(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apprelease.dev/v1alpha1",
        "kind": "AppRelease",
        "metadata": {"name": NAME, "namespace": NS, "generation": 1, "uid": "uid-shop"},
        "spec": spec,
    }
