"""validate_spec: the spec rules the operator re-checks because the CRD in the cluster may be older."""

from __future__ import annotations

from typing import Any

import pytest

from apprelease.core.api import AppReleaseSpec
from apprelease.core.conditions import Reason
from apprelease.core.validation import validate_spec

DIGEST = "sha256:" + "a" * 64


def spec(**overrides: Any) -> AppReleaseSpec:
    raw: dict[str, Any] = {
        "image": "registry.example.com/shop/web",
        "version": "v1.4.2",
        "workloads": [{"kind": "Deployment", "name": "web"}],
    }
    raw.update(overrides)
    return AppReleaseSpec.model_validate(raw)


def workloads(count: int) -> list[dict[str, Any]]:
    return [{"name": f"web-{i}"} for i in range(count)]


def reason(s: AppReleaseSpec) -> str | None:
    problem = validate_spec(s)
    return problem.reason if problem else None


def test_valid_spec_has_no_problem() -> None:
    assert validate_spec(spec()) is None


def test_full_valid_spec_has_no_problem() -> None:
    full = spec(
        image="nginx",
        version="1.27_rc-1.x",
        digest="sha512:" + "b" * 128,
        workloads=[{"name": "web", "containers": ["web", "sidecar"]}, {"name": "worker"}],
        imagePullSecrets=[{"name": "pull"}],
        provenance="Required",
        historyLimit=100,
        suspend=True,
    )
    assert validate_spec(full) is None


@pytest.mark.parametrize("version", ["latest", "LATEST", "Latest", "lAtEsT"])
def test_latest_in_any_case_is_a_mutable_reference(version: str) -> None:
    problem = validate_spec(spec(version=version))
    assert problem is not None
    assert problem.reason == Reason.MUTABLE_REFERENCE
    assert problem.stalled
    assert version in problem.message


def test_latest_is_reported_before_other_mistakes() -> None:
    assert reason(spec(version="latest", image="", workloads=[])) == Reason.MUTABLE_REFERENCE


@pytest.mark.parametrize(
    ("image", "mentions"),
    [
        ("registry.example.com/shop/web:v1", "tag"),
        ("nginx:1.27", "tag"),
        ("registry.example.com/shop/web@" + DIGEST, "digest"),
        ("registry.example.com/shop/web:v1@" + DIGEST, "digest"),
    ],
)
def test_image_with_tag_or_digest_is_a_mutable_reference(image: str, mentions: str) -> None:
    problem = validate_spec(spec(image=image))
    assert problem is not None
    assert problem.reason == Reason.MUTABLE_REFERENCE
    assert mentions in problem.message


def test_registry_port_is_not_mistaken_for_a_tag() -> None:
    assert validate_spec(spec(image="localhost:5000/shop/web")) is None


@pytest.mark.parametrize(
    ("overrides", "mentions"),
    [
        ({"image": ""}, "spec.image is required"),
        ({"image": "Registry.example.com/Shop/Web"}, "spec.image"),
        ({"version": ""}, "spec.version is required"),
        ({"version": "-v1"}, "not a valid image tag"),
        ({"version": ".v1"}, "not a valid image tag"),
        ({"version": "v1/2"}, "not a valid image tag"),
        ({"version": "v" * 129}, "not a valid image tag"),
        ({"digest": "sha256:" + "A" * 64}, "spec.digest"),
        ({"digest": "sha256:abc"}, "spec.digest"),
        ({"digest": "md5:" + "a" * 32}, "spec.digest"),
        ({"digest": ""}, "spec.digest"),
        ({"workloads": []}, "at least one"),
        ({"workloads": workloads(21)}, "at most 20"),
        ({"workloads": [{"name": "web"}, {"name": "web"}]}, "twice"),
        ({"workloads": [{"kind": "Job", "name": "db"}]}, "not supported"),
        ({"workloads": [{"kind": "deployment", "name": "db"}]}, "not supported"),
        ({"rollout": {"timeoutSeconds": 29}}, "spec.rollout.timeoutSeconds"),
        ({"rollout": {"timeoutSeconds": 86401}}, "spec.rollout.timeoutSeconds"),
        ({"rollout": {"onFailure": "Retry"}}, "spec.rollout.onFailure"),
        ({"workloads": [{"name": "Web_1"}]}, "not a valid object name"),
        ({"workloads": [{"name": ""}]}, "not a valid object name"),
        ({"workloads": [{"name": "web", "containers": ["app", "app"]}]}, "container twice"),
        ({"provenance": "Always"}, "spec.provenance"),
        ({"provenance": "required"}, "spec.provenance"),
        ({"historyLimit": 0}, "spec.historyLimit"),
        ({"historyLimit": 101}, "spec.historyLimit"),
        # The CRD's length and count bounds, held without the CRD too (each pull secret is a Secret read).
        ({"image": "r.example/" + "a" * 246}, "longer than 255"),
        ({"workloads": [{"name": "a" * 254}]}, "not a valid object name"),
        ({"workloads": [{"name": "web", "containers": [f"c{i}" for i in range(51)]}]}, "at most 50"),
        ({"workloads": [{"name": "web", "containers": ["c" * 64]}]}, "1 to 63"),
        ({"workloads": [{"name": "web", "containers": [""]}]}, "1 to 63"),
        ({"imagePullSecrets": [{"name": f"s{i}"} for i in range(21)]}, "at most 20 Secrets"),
        ({"imagePullSecrets": [{"name": ""}]}, "1 to 253"),
    ],
)
def test_invalid_spec(overrides: dict[str, Any], mentions: str) -> None:
    problem = validate_spec(spec(**overrides))
    assert problem is not None
    assert problem.reason == Reason.INVALID_SPEC
    assert problem.stalled
    assert mentions in problem.message


@pytest.mark.parametrize("version", ["v" * 128, "_v1", "1", "V1.2.3-rc.1"])
def test_tag_grammar_edges_are_valid(version: str) -> None:
    assert validate_spec(spec(version=version)) is None


@pytest.mark.parametrize("history_limit", [1, 100])
def test_history_limit_bounds_are_inclusive(history_limit: int) -> None:
    assert validate_spec(spec(historyLimit=history_limit)) is None


def test_every_workload_kind_and_rollout_policy_is_valid() -> None:
    kinds = [{"kind": k, "name": "app"} for k in ("Deployment", "StatefulSet", "DaemonSet", "CronJob")]
    for rollout in ({"timeoutSeconds": 30, "onFailure": "Halt"}, {"timeoutSeconds": 86400, "onFailure": "Rollback"}):
        assert validate_spec(spec(workloads=kinds, rollout=rollout)) is None


def test_twenty_workloads_are_allowed() -> None:
    assert validate_spec(spec(workloads=workloads(20))) is None


def test_the_crd_bounds_themselves_are_allowed() -> None:
    at_bounds = spec(
        image="r.example/" + "a" * 245,
        workloads=[{"name": "a" * 253, "containers": ["c" * 63, *(f"c{i}" for i in range(49))]}],
        imagePullSecrets=[{"name": "s" * 253}, *({"name": f"s{i}"} for i in range(19))],
    )
    assert validate_spec(at_bounds) is None


def test_a_huge_workload_name_is_quoted_bounded() -> None:
    problem = validate_spec(spec(workloads=[{"name": "A" * 100_000}]))
    assert problem is not None and len(problem.message) < 200


def test_index_of_the_offending_workload_is_named() -> None:
    problem = validate_spec(spec(workloads=[{"name": "web"}, {"kind": "ReplicaSet", "name": "agent"}]))
    assert problem is not None and "spec.workloads[1]" in problem.message


def test_a_wrongly_typed_field_is_invalid_not_defaulted() -> None:
    from apprelease.core.api import AppRelease

    release = AppRelease.from_k8s(
        {
            "metadata": {"name": "web", "namespace": "shop", "generation": 1},
            "spec": {
                "image": "registry.example.com/shop/web",
                "version": "v1",
                "digest": 123,
                "suspend": "maybe",
                "workloads": [{"kind": "Deployment", "name": "web"}],
            },
        }
    )
    problem = validate_spec(release.spec)
    assert problem is not None and problem.reason == "InvalidSpec"
    assert "spec.digest" in problem.message and "spec.suspend" in problem.message
