"""The chart's hold-unpinned admission policy on the real API server, with the operator as a real process: a
labelled Deployment created with a tag runs no pod and gets no ReplicaSet until its AppRelease pins it; the pin
releases it, and its only ReplicaSet runs the digest. One its owner created paused, and one not labelled, are
left as they are. A Deployment whose AppRelease is refused stays held (no pod ever runs the tag)."""

from __future__ import annotations

from typing import Any

import yaml

from e2e.conftest import Helm
from e2e.holdpolicy import CHART, MAP_API, hold_unpinned, probe
from e2e.images import Pushed
from e2e.releases import apply, deployment_manifest, release_manifest, wait_condition, wait_ready
from e2e.support import Operator, Testbed, wait_until


def _deployment(testbed: Testbed, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = testbed.kubectl_json("get", "deployment", name, "-n", namespace)
    return found


def _replica_set_images(testbed: Testbed, namespace: str, app: str) -> list[str]:
    listed = testbed.kubectl_json("get", "replicasets", "-n", namespace, "-l", f"app={app}")
    return sorted(c["image"] for rs in listed["items"] for c in rs["spec"]["template"]["spec"]["containers"])


def test_a_labelled_deployment_by_tag_runs_nothing_until_pinned(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed]
) -> None:
    repository = web["v1.0.0"].repository
    digest = web["v1.0.0"].digest
    with hold_unpinned(testbed, [namespace]):
        apply(
            testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web", replicas=1)
        )
        owned = deployment_manifest(namespace, "own", {"own": f"{repository}:v1.0.0"}, release="own", replicas=1)
        owned["spec"]["paused"] = True
        apply(testbed, owned)
        apply(
            testbed, deployment_manifest(namespace, "free", {"free": f"{repository}:v1.0.0"}, release=None, replicas=1)
        )
        bad = deployment_manifest(namespace, "bad", {"bad": f"{repository}:v1.0.0"}, release="bad", replicas=1)
        apply(testbed, bad)

        held = _deployment(testbed, namespace, "web")
        assert held["spec"]["paused"] is True
        assert held["metadata"]["annotations"]["apprelease.dev/held"] == "unpinned"
        assert "apprelease.dev/held" not in _deployment(testbed, namespace, "own")["metadata"].get("annotations", {})
        free = _deployment(testbed, namespace, "free")
        assert not free["spec"].get("paused") and "apprelease.dev/held" not in free["metadata"].get("annotations", {})
        # The controller-manager has seen the held Deployment (observedGeneration) and made no ReplicaSet.
        wait_until(
            lambda: _deployment(testbed, namespace, "web").get("status", {}).get("observedGeneration") == 1 or None,
            timeout=60,
            what="the held Deployment observed",
        )
        assert _replica_set_images(testbed, namespace, "web") == []

        workloads = [{"kind": "Deployment", "name": "web"}]
        apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", workloads))
        apply(
            testbed, release_manifest(namespace, "own", repository, "v1.0.0", [{"kind": "Deployment", "name": "own"}])
        )
        # Refused by the operator (a registry it does not allow): its Deployment stays held, untouched.
        bad_release = release_manifest(
            namespace, "bad", "elsewhere.invalid/app", "v1.0.0", [{"kind": "Deployment", "name": "bad"}]
        )
        apply(testbed, bad_release)

        release = wait_ready(testbed, namespace, "web", "v1.0.0")
        assert release["status"]["digest"] == digest
        released = _deployment(testbed, namespace, "web")
        assert not released["spec"].get("paused")
        assert "apprelease.dev/held" not in released["metadata"].get("annotations", {})
        assert _replica_set_images(testbed, namespace, "web") == [f"{repository}@{digest}"]  # the only one

        wait_until(
            lambda: (
                _deployment(testbed, namespace, "own")["spec"]["template"]["spec"]["containers"][0]["image"]
                == f"{repository}@{digest}"
                or None
            ),
            timeout=60,
            what="the owner's paused Deployment pinned",
        )
        assert _deployment(testbed, namespace, "own")["spec"]["paused"] is True  # its owner's pause stays

        wait_condition(testbed, namespace, "bad", "Stalled", "True")
        still = _deployment(testbed, namespace, "bad")
        assert still["spec"]["paused"] is True and _replica_set_images(testbed, namespace, "bad") == []
        assert still["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repository}:v1.0.0"


def test_the_chart_renders_the_policy_only_when_asked_and_bound_to_its_namespaces(helm: Helm) -> None:
    default = helm("template", "x", str(CHART))
    assert "MutatingAdmissionPolicy" not in default.stdout  # off unless asked (a GitOps wait could deadlock)
    shown = ["template", "x", str(CHART), "--show-only", "templates/hold-unpinned.yaml"]
    shown += ["--set", "holdUnpinned.enabled=true"]
    refused = helm(*shown, check=False)  # a cluster without the API: a clear refusal, nothing half-installed
    assert refused.returncode != 0 and "MutatingAdmissionPolicy API (Kubernetes 1.36 or later)" in refused.stderr
    shown += ["--api-versions", MAP_API]
    policy, binding = yaml.safe_load_all(helm(*shown, "--set", "watchNamespaces={a,b}").stdout)
    assert policy["kind"] == "MutatingAdmissionPolicy"
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchExpressions": [names]}
    narrowed = helm(
        *shown, "--set", "watchNamespaces={a,b}", "--set", "holdUnpinned.namespaceSelector.matchLabels.team=x"
    )
    selector = list(yaml.safe_load_all(narrowed.stdout))[1]["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchLabels": {"team": "x"}, "matchExpressions": [names]}  # ANDed, never widened
    expressions = [
        "--set-json",
        'holdUnpinned.namespaceSelector={"matchExpressions":[{"key":"tier","operator":"Exists"}]}',
    ]
    both = helm(*shown, "--set", "watchNamespaces={a,b,a}", *expressions)
    selector = list(yaml.safe_load_all(both.stdout))[1]["spec"]["matchResources"]["namespaceSelector"]
    assert selector == {"matchExpressions": [{"key": "tier", "operator": "Exists"}, names]}  # each once
    unset = helm(*shown, "--set", "holdUnpinned.namespaceSelector=null")
    assert "matchResources" not in list(yaml.safe_load_all(unset.stdout))[1]["spec"]
    everywhere = list(yaml.safe_load_all(helm(*shown).stdout))[1]
    assert "matchResources" not in everywhere["spec"]  # the whole cluster, as the operator watches it


DIGEST = "@sha256:" + "a" * 64


def test_the_policy_holds_every_shape_by_tag_and_nothing_by_digest(testbed: Testbed, namespace: str) -> None:
    with hold_unpinned(testbed, [namespace]):
        init_by_tag = {
            "initContainers": [{"name": "m", "image": "r/m:1"}],
            "containers": [{"name": "a", "image": f"r/a{DIGEST}"}],
        }
        held = probe(testbed, namespace, init_by_tag, annotations={"team": "shop"})
        assert held["spec"]["paused"] is True
        assert held["metadata"]["annotations"] == {"team": "shop", "apprelease.dev/held": "unpinned"}  # kept, added
        by_digest = {
            "initContainers": [{"name": "m", "image": f"r/m{DIGEST}"}],
            "containers": [{"name": "a", "image": f"r/a:1{DIGEST}"}],
        }
        free = probe(testbed, namespace, by_digest)
        assert not free["spec"].get("paused") and "apprelease.dev/held" not in free["metadata"].get("annotations", {})
        sidecar_by_tag = {"containers": [{"name": "a", "image": f"r/a{DIGEST}"}, {"name": "proxy", "image": "envoy:1"}]}
        assert probe(testbed, namespace, sidecar_by_tag)["spec"]["paused"] is True
