"""The Helm chart (charts/apprelease-operator) against the real API server.

Lint and render it, have the API server accept what it renders (dry-run), check the Deployment's hardening,
then install it and run the operator with nothing but the chart's ServiceAccount token: release, upgrade and
roll back through the chart's RBAC, and show that RBAC grants no more than that.
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e.conftest import LOGS, Helm
from e2e.images import Pushed
from e2e.releases import (
    apply,
    container_images,
    deployment_manifest,
    events,
    get_release,
    patch_release,
    release_manifest,
    wait_ready,
)
from e2e.support import ROOT, Operator, Testbed, refusals, wait_until

CHART = ROOT / "charts" / "apprelease-operator"
CRD = ROOT / "crds" / "apprelease.dev_appreleases.yaml"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _values_file(path: Path, values: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _template(helm: Helm, tmp_path: Path, namespace: str, values: dict[str, Any], *extra: str) -> str:
    values_file = _values_file(tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml", values)
    return helm("template", "ar", str(CHART), "-n", namespace, "-f", values_file, *extra).stdout


def _docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def _dry_run(testbed: Testbed, rendered: str) -> list[dict[str, Any]]:
    """kubectl apply --dry-run=server: the API server validates (schema, admission, RBAC escalation) and answers."""
    result = testbed.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=rendered, check=False)
    assert result.returncode == 0, f"the API server refused the chart's output:\n{result.stderr}"
    answer = json.loads(result.stdout)
    return list(answer["items"]) if answer.get("kind") == "List" else [answer]


@pytest.fixture
def other_namespace(testbed: Testbed, namespace: str) -> Iterator[str]:
    name = f"{namespace}-b"
    testbed.kubectl("create", "namespace", name)
    yield name
    testbed.kubectl("delete", "namespace", name, "--wait=false")


def test_chart_crd_is_byte_identical_to_the_single_source() -> None:
    chart_crds = sorted((CHART / "crds").iterdir())
    assert [p.name for p in chart_crds] == [CRD.name]
    assert chart_crds[0].read_bytes() == CRD.read_bytes(), f"copy {CRD} to {CHART / 'crds'}"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": ["team-a", "team-b"], "image": {"digest": DIGEST}},
        {
            "caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "insecureRegistries": ["r:5000"],
        },
        {"allowedPrivateNetworks": ["10.20.0.0/16", "fd00:1::/64"], "registryResolutionTimeoutSeconds": 20},
    ],
    ids=["defaults", "namespaced-digest", "ca-bundle", "private-networks"],
)
def test_helm_lint_is_clean(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", _values_file(tmp_path / "values.yaml", values), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output, output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


def test_default_render_is_cluster_wide_and_accepted_by_the_api_server(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    rendered = _template(helm, tmp_path, namespace, {}, "--include-crds")
    docs = _docs(rendered)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    crd = _one(docs, "CustomResourceDefinition")
    assert crd == yaml.safe_load(CRD.read_text())
    role = _named(docs, "ClusterRole", "ar-apprelease-operator")
    assert _rules(role) == {**NAMESPACED_RULES, **CRD_RULES}
    assert _rules(_named(docs, "ClusterRole", "ar-apprelease-operator-edit")) == TENANT_EDIT_RULES
    assert _rules(_named(docs, "ClusterRole", "ar-apprelease-operator-view")) == TENANT_VIEW_RULES
    binding = _one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ar-apprelease-operator", "namespace": namespace}]
    _assert_leader_election(docs, namespace)
    container = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "apprelease/operator:0.1.0"  # the tag defaults to appVersion
    assert _env(container) == {
        "APPRELEASE_HEALTH_PORT": "8080",
        "APPRELEASE_METRICS_PORT": "8081",
        "APPRELEASE_LOG_LEVEL": "INFO",
        "APPRELEASE_WATCH_NAMESPACES": "",
        "APPRELEASE_ALLOWED_REGISTRIES": "",
        "APPRELEASE_INSECURE_REGISTRIES": "",
        "APPRELEASE_ALLOWED_PRIVATE_NETWORKS": "",
        "APPRELEASE_REGISTRY_RESOLUTION_TIMEOUT_SECONDS": "30",
        "APPRELEASE_REQUIRE_UID_BINDING": "false",
        "APPRELEASE_VERIFY_FLOOR": "None",  # spec.verify alone decides, unless the platform team raises it
        **LEADER_ELECTION_ENV,
        "APPRELEASE_PROMOTION_SOURCES": "",
        "APPRELEASE_NOTIFY_INSECURE_HOSTS": "",
        "APPRELEASE_NOTIFY_ALLOWED_NETWORKS": "",
    }
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}

    answered = _dry_run(testbed, rendered)
    assert sorted(o["kind"] for o in answered) == kinds


def test_namespaced_render_with_digest_is_accepted_by_the_api_server(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, other_namespace: str, tmp_path: Path
) -> None:
    values = {
        "watchNamespaces": [namespace, other_namespace, namespace],
        "image": {"tag": "9.9.9", "digest": DIGEST},
        "insecureRegistries": [testbed.registry, "registry.local:5000"],
        "allowedRegistries": [testbed.registry, "*.registry.example"],
        "networkPolicy": {
            "enabled": True,
            "apiServerCIDR": "10.0.0.0/24",
            "apiServerPort": 6443,
            "egress": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}]}],
        },
        "logLevel": "DEBUG",
        "tenancy": {"requireUidBinding": True},
    }
    rendered = _template(helm, tmp_path, namespace, values)
    docs = _docs(rendered)
    assert not [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "ar-apprelease-operator"]
    _assert_leader_election(docs, namespace)
    roles = [d for d in docs if d["kind"] == "Role" and not d["metadata"]["name"].endswith("-leader-election")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted([namespace, other_namespace])
    for role in roles:
        assert _rules(role) == NAMESPACED_RULES
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and not d["metadata"]["name"].endswith("-leader-election")
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted([namespace, other_namespace])
    for binding in bindings:
        assert binding["roleRef"]["name"] == "ar-apprelease-operator"
        assert binding["subjects"][0]["namespace"] == namespace
    cluster_role = _named(docs, "ClusterRole", "ar-apprelease-operator-discovery")
    # The operator's only cluster-scoped grant here (the others are the tenants' aggregated roles).
    assert _rules(cluster_role) == {**CRD_RULES, **NAMESPACE_RULES}
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole") == [
        "ar-apprelease-operator-discovery",
        "ar-apprelease-operator-edit",
        "ar-apprelease-operator-view",
    ]

    container = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"apprelease/operator@{DIGEST}"  # the digest wins over the tag
    assert "9.9.9" not in rendered
    env = _env(container)
    assert env["APPRELEASE_WATCH_NAMESPACES"] == f"{namespace},{other_namespace}"
    assert env["APPRELEASE_INSECURE_REGISTRIES"] == f"{testbed.registry},registry.local:5000"
    assert env["APPRELEASE_ALLOWED_REGISTRIES"] == f"{testbed.registry},*.registry.example"
    assert env["APPRELEASE_LOG_LEVEL"] == "DEBUG"
    assert env["APPRELEASE_REQUIRE_UID_BINDING"] == "true"
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"] == _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    egress_cidrs = [p["ipBlock"]["cidr"] for rule in policy["egress"] for p in rule.get("to", []) if "ipBlock" in p]
    assert egress_cidrs == ["10.0.0.0/24", "10.1.0.0/24"]

    answered = _dry_run(testbed, rendered)
    assert sorted(o["kind"] for o in answered) == sorted(d["kind"] for d in docs)
    deployment = _one(answered, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"apprelease/operator@{DIGEST}"


def test_rendered_deployment_is_hardened_and_the_api_server_keeps_it_so(
    testbed: Testbed, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    ca = Path(testbed.registry_auth_ca).read_text()
    values = {
        "caBundle": ca,
        "imagePullSecrets": [{"name": "operator-pull"}],
        "podAnnotations": {"example.com/team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
    }
    rendered = _template(helm, tmp_path, namespace, values)
    docs = _docs(rendered)
    config_map = _one(docs, "ConfigMap")
    assert config_map["data"]["ca.crt"].strip() == ca.strip()

    rendered_deployment = _one(docs, "Deployment")
    server_deployment = _one(_dry_run(testbed, rendered), "Deployment")
    for deployment in (rendered_deployment, server_deployment):
        spec = deployment["spec"]
        # Two replicas with leader election: a rolling update starts the new pod before stopping an old one.
        assert spec["replicas"] == 2
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        pod = spec["template"]["spec"]
        [spread] = pod["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
        assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["serviceAccountName"] == "ar-apprelease-operator"
        assert pod["imagePullSecrets"] == [{"name": "operator-pull"}]
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert pod["tolerations"][0]["key"] == "dedicated"
        assert spec["template"]["metadata"]["annotations"]["example.com/team"] == "platform"
        assert "checksum/ca-bundle" in spec["template"]["metadata"]["annotations"]
        [container] = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["ports"] == [
            {"name": "health", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
        ]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
            assert container[probe]["httpGet"]["port"] == "health"
        assert container["resources"] == {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"},
        }
        assert _env(container)["APPRELEASE_CA_BUNDLE"] == "/etc/apprelease/ca/ca.crt"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["tmp"]["mountPath"] == "/tmp"
        assert mounts["ca-bundle"]["mountPath"] == "/etc/apprelease/ca"
        assert mounts["ca-bundle"]["readOnly"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        assert volumes["ca-bundle"]["configMap"]["name"] == config_map["metadata"]["name"]


def test_operator_with_only_the_charts_rbac_releases_upgrades_and_rolls_back(
    testbed: Testbed,
    api: client.ApiClient,
    crd_installed: None,
    operator: Operator,
    helm: Helm,
    namespace: str,
    web: dict[str, Pushed],  # noqa: F811
    tmp_path: Path,
) -> None:
    release = f"ar-{uuid.uuid4().hex[:6]}"
    values = {
        "watchNamespaces": [namespace],
        "insecureRegistries": [testbed.registry],
        "caBundle": Path(testbed.registry_auth_ca).read_text(),
        "logLevel": "INFO",
    }
    values_file = _values_file(tmp_path / "values.yaml", values)
    # Only the operator started here (the chart's ServiceAccount, this namespace) may touch these AppReleases.
    operator.stop()
    chart_operator: Operator | None = None
    try:
        helm("install", release, str(CHART), "-n", namespace, "-f", values_file)
        fullname = f"{release}-apprelease-operator"
        kubeconfig = _service_account_kubeconfig(testbed, api, namespace, fullname, tmp_path)

        log_path = LOGS / "operator-chart.log"
        log_path.unlink(missing_ok=True)
        env = _operator_env_from_installed_chart(testbed, namespace, fullname, tmp_path)
        assert env["APPRELEASE_WATCH_NAMESPACES"] == namespace
        chart_operator = Operator(
            testbed,
            log_path,
            extra_env={
                **env,
                "KUBECONFIG": kubeconfig,
                "APPRELEASE_HEALTH_PORT": "18081",
                "APPRELEASE_METRICS_PORT": "18091",
            },
        )
        chart_operator.start()

        repository = web["v1.0.0"].repository
        v1, v2 = web["v1.0.0"].digest, web["v1.1.0"].digest
        apply(testbed, deployment_manifest(namespace, "web", {"web": f"{repository}:v1.0.0"}, release="web"))
        apply(
            testbed, release_manifest(namespace, "web", repository, "v1.0.0", [{"kind": "Deployment", "name": "web"}])
        )
        # Quick: kopf must not stall on a forbidden namespace listing (it retries for about a minute).
        status = wait_ready(testbed, namespace, "web", "v1.0.0", timeout=30)["status"]
        assert status["digest"] == v1 and status["revision"] == 1
        # It led through the chart's Lease RBAC (a Role in its own namespace), under the chart's Lease name.
        lease = testbed.kubectl_json("get", "lease", fullname, "-n", namespace)
        assert lease["spec"]["holderIdentity"] == f"{fullname}-e2e"
        assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v1}"}

        patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
        status = wait_ready(testbed, namespace, "web", "v1.1.0")["status"]
        assert status["digest"] == v2 and status["revision"] == 2
        assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v2}"}

        patch_release(testbed, namespace, "web", {"version": "v1.0.0"})
        history = wait_ready(testbed, namespace, "web", "v1.0.0")["status"]["history"]
        assert container_images(testbed, namespace, "web") == {"web": f"{repository}@{v1}"}
        assert [(h["revision"], h["version"]) for h in history] == [(3, "v1.0.0"), (2, "v1.1.0"), (1, "v1.0.0")]
        assert history[0]["source"] == "History" and history[0]["restoredFrom"] == 1
        assert history[0]["digest"] == v1 and history[0]["outcome"] == "Succeeded"
        # Events go out under the chart's RBAC too.
        posted = wait_until(
            lambda: [e for e in events(testbed, namespace) if e.get("reportingComponent") == "apprelease-operator"],
            timeout=30,
            what="the operator's Events",
        )
        assert posted, "the operator posted no events"
        assert get_release(testbed, namespace, "web")["status"]["revision"] == 3

        log = log_path.read_text()
        assert not refusals(log), refusals(log)
        assert "could not post event" not in log and "Not enough permissions" not in log, log[-4000:]

        _assert_rbac_is_least_privilege(kubeconfig, namespace)
    finally:
        if chart_operator is not None:
            chart_operator.stop()
        helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)
        operator.start()
    # The cluster-scoped part is gone with the release.
    left = testbed.kubectl("get", "clusterrole", f"{release}-apprelease-operator-discovery", check=False)
    assert left.returncode != 0 and "NotFound" in left.stderr


def test_cluster_wide_install_grants_no_more_than_the_operator_needs(
    testbed: Testbed,
    api: client.ApiClient,
    crd_installed: None,
    helm: Helm,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
) -> None:
    release = f"ar-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-apprelease-operator"
    try:
        helm("install", release, str(CHART), "-n", namespace)
        kubeconfig = _service_account_kubeconfig(testbed, api, namespace, fullname, tmp_path)
        for ns in (namespace, other_namespace):
            for allowed in [
                "list appreleases.apprelease.dev",
                "watch appreleases.apprelease.dev",
                "patch appreleases.apprelease.dev --subresource=status",
                "patch deployments.apps",
                "patch statefulsets.apps",
                "patch daemonsets.apps",
                "patch cronjobs.batch",
                "list pods",
                "list replicasets.apps",
                "get secrets",
                "create events",
            ]:
                assert _can_i(kubeconfig, allowed, ns), f"{allowed} in {ns}"
        # Leases: in the operator's own namespace only, and only the verbs the elector uses.
        for verb in ("get", "create", "update"):
            assert _can_i(kubeconfig, f"{verb} leases.coordination.k8s.io", namespace), verb
            assert not _can_i(kubeconfig, f"{verb} leases.coordination.k8s.io", other_namespace), verb
        for verb in ("delete", "list", "watch", "patch"):
            assert not _can_i(kubeconfig, f"{verb} leases.coordination.k8s.io", namespace), verb
            for denied in [
                "list secrets",
                "delete deployments.apps",
                "create deployments.apps",
                "create pods",
                "get pods",
                "watch pods",
                "create cronjobs.batch",
                "delete statefulsets.apps",
                "get replicasets.apps",
                "watch replicasets.apps",
                "list jobs.batch",
                "create jobs.batch",
                "update appreleases.apprelease.dev",
                "update appreleases.apprelease.dev --subresource=status",
                "delete appreleases.apprelease.dev",
                "patch events",
            ]:
                assert not _can_i(kubeconfig, denied, ns), f"{denied} in {ns} should be denied"
        assert _can_i(kubeconfig, "list customresourcedefinitions.apiextensions.k8s.io")
        assert not _can_i(kubeconfig, "list namespaces")
        assert not _can_i(kubeconfig, "create customresourcedefinitions.apiextensions.k8s.io")
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)
    for kind in ("clusterrole", "clusterrolebinding"):
        left = testbed.kubectl("get", kind, fullname, check=False)
        assert left.returncode != 0 and "NotFound" in left.stderr, f"{kind} {fullname} left after uninstall"


def test_tenants_with_edit_or_admin_write_appreleases_but_never_their_status(
    testbed: Testbed, api: client.ApiClient, crd_installed: None, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    """Promotion trusts upstream status: a tenant's ServiceAccount token gets 403 on appreleases/status."""
    release = f"ar-{uuid.uuid4().hex[:6]}"
    try:
        helm("install", release, str(CHART), "-n", namespace)
        for role in ("edit", "admin"):
            account = f"tenant-{role}"
            testbed.kubectl("create", "serviceaccount", account, "-n", namespace)
            testbed.kubectl(
                "create", "rolebinding", account, f"--clusterrole={role}", f"--serviceaccount={namespace}:{account}",
                "-n", namespace,
            )  # fmt: skip
            kubeconfig = _service_account_kubeconfig(testbed, api, namespace, account, tmp_path)
            # The controller manager aggregates the chart's rules into edit/admin asynchronously.
            wait_until(
                functools.partial(_aggregated, kubeconfig, namespace),
                timeout=30,
                what=f"appreleases aggregated into {role}",
            )
            name = f"web-{role}"
            manifest = release_manifest(namespace, name, f"{testbed.registry}/e2e/web", "v1.0.0", [{"name": name}])
            tenant = ["kubectl", "--kubeconfig", kubeconfig, "-n", namespace]
            created = subprocess.run(
                [*tenant, "create", "-f", "-"], input=yaml.safe_dump(manifest), capture_output=True, text=True
            )
            assert created.returncode == 0, created.stderr
            forged = {
                "status": {"history": [{"revision": 9, "version": "v9", "digest": DIGEST, "outcome": "Succeeded"}]}
            }
            for verb in ("patch", "replace"):
                args = ["--subresource=status"]
                if verb == "patch":
                    args += ["appreleases.apprelease.dev", name, "--type=merge", "-p", json.dumps(forged)]
                    answer = subprocess.run([*tenant, verb, *args], capture_output=True, text=True)
                else:
                    body = {**manifest, **forged}
                    answer = subprocess.run(
                        [*tenant, verb, *args, "-f", "-"], input=yaml.safe_dump(body), capture_output=True, text=True
                    )
                assert answer.returncode != 0 and "Forbidden" in answer.stderr, f"{role} {verb}: {answer.stderr}"
            for verb in ("patch", "update"):
                assert not _can_i(kubeconfig, f"{verb} appreleases.apprelease.dev --subresource=status", namespace)
            status = get_release(testbed, namespace, name).get("status") or {}
            assert [h for h in status.get("history") or [] if h.get("version") == "v9"] == []  # nothing forged
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "60s", check=False)


# --- helpers ---------------------------------------------------------------------------------------------

NAMESPACED_RULES = {
    ("apprelease.dev", "appreleases"): {"get", "list", "watch"},
    ("apprelease.dev", "appreleases/status"): {"patch"},
    ("apps", "deployments"): {"get", "list", "watch", "patch"},
    ("apps", "statefulsets"): {"get", "list", "watch", "patch"},
    ("apps", "daemonsets"): {"get", "list", "watch", "patch"},
    ("batch", "cronjobs"): {"get", "list", "watch", "patch"},
    ("apps", "replicasets"): {"list"},
    ("", "pods"): {"list", "delete"},
    ("", "secrets"): {"get"},
    ("", "configmaps"): {"get"},  # spec.verify.trustedRootRef
    ("", "serviceaccounts"): {"get"},
    ("", "events"): {"create"},
}
TENANT_EDIT_RULES = {
    ("apprelease.dev", "appreleases"): {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    }
}
TENANT_VIEW_RULES = {("apprelease.dev", "appreleases"): {"get", "list", "watch"}}
CRD_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
LEADER_ELECTION_ENV = {
    "APPRELEASE_LEADER_ELECTION": "true",
    "APPRELEASE_LEADER_ELECTION_NAME": "ar-apprelease-operator",
    "APPRELEASE_LEASE_DURATION_SECONDS": "8",
    "APPRELEASE_RENEW_DEADLINE_SECONDS": "6",
    "APPRELEASE_RETRY_PERIOD_SECONDS": "2",
    "POD_NAME": "",  # valueFrom: the downward API
    "POD_NAMESPACE": "",
}


def _assert_leader_election(docs: list[dict[str, Any]], namespace: str) -> None:
    """Lease RBAC is a Role in the release's namespace (never cluster-wide), plus a PodDisruptionBudget."""
    role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "ar-apprelease-operator-leader-election"
    )
    assert role["metadata"]["namespace"] == namespace and _rules(role) == LEASE_RULES
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == role["metadata"]["name"])
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert not any(r["kind"] == "ClusterRole" and ("coordination.k8s.io", "leases") in _rules(r) for r in docs)
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


NAMESPACE_RULES = {("", "namespaces"): {"list", "watch"}}  # namespaced mode only: kopf lists them, see rbac.yaml


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def _service_account_kubeconfig(
    testbed: Testbed, api: client.ApiClient, namespace: str, service_account: str, tmp_path: Path
) -> str:
    """A kubeconfig with only a TokenRequest token for the chart's ServiceAccount (server + CA of the test bed)."""
    core = client.CoreV1Api(api)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    answer: Any = core.create_namespaced_service_account_token(service_account, namespace, request)
    token = answer.status.token
    assert token
    server = testbed.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca = testbed.kubectl(
        "config", "view", "--minify", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority}"
    ).stdout
    path = tmp_path / f"{service_account}.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": ca}}],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "testbed", "user": service_account}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return str(path)


def _operator_env_from_installed_chart(
    testbed: Testbed, namespace: str, fullname: str, tmp_path: Path
) -> dict[str, str]:
    """The env the chart gives the operator container, with the CA bundle file taken from the chart's ConfigMap."""
    deployment = testbed.kubectl_json("get", "deployment", fullname, "-n", namespace)
    env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
    # What the downward API would give the pod: its name (the candidate's identity) and namespace (the Lease's).
    if "POD_NAMESPACE" in env:
        env.update(POD_NAME=f"{fullname}-e2e", POD_NAMESPACE=namespace)
    if "APPRELEASE_CA_BUNDLE" in env:
        config_map = testbed.kubectl_json("get", "configmap", f"{fullname}-ca", "-n", namespace)
        ca_file = tmp_path / "ca.crt"
        ca_file.write_text(config_map["data"]["ca.crt"])
        env["APPRELEASE_CA_BUNDLE"] = str(ca_file)
    return env


def _aggregated(kubeconfig: str, namespace: str) -> bool | None:
    return _can_i(kubeconfig, "create appreleases.apprelease.dev", namespace) or None


def _can_i(kubeconfig: str, what: str, namespace: str | None = None) -> bool:
    args = ["kubectl", "--kubeconfig", kubeconfig, "auth", "can-i", *what.split()]
    args += ["-n", namespace] if namespace else []
    result = subprocess.run(args, capture_output=True, text=True)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return answer == "yes"


def _assert_rbac_is_least_privilege(kubeconfig: str, namespace: str) -> None:
    for allowed in [
        "get secrets",
        "patch deployments.apps",
        "watch appreleases.apprelease.dev",
        "patch appreleases.apprelease.dev --subresource=status",
    ]:
        assert _can_i(kubeconfig, allowed, namespace), f"{allowed} in {namespace}"
    for denied in [
        "list secrets",
        "watch secrets",
        "delete deployments.apps",
        "create deployments.apps",
        "create pods",
        "update appreleases.apprelease.dev",
        "create roles.rbac.authorization.k8s.io",
    ]:
        assert not _can_i(kubeconfig, denied, namespace), f"{denied} in {namespace} should be denied"
    for elsewhere in ["get secrets", "list appreleases.apprelease.dev", "patch deployments.apps"]:
        assert not _can_i(kubeconfig, elsewhere, "kube-system"), f"{elsewhere} in kube-system should be denied"
    assert _can_i(kubeconfig, "watch customresourcedefinitions.apiextensions.k8s.io")
    assert _can_i(kubeconfig, "watch namespaces")  # names only, for kopf; nothing else cluster-wide
    for denied in ["get namespaces", "delete namespaces", "create customresourcedefinitions.apiextensions.k8s.io"]:
        assert not _can_i(kubeconfig, denied), f"{denied} should be denied"

    # And real calls, not only the authorizer's opinion.
    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True)

    for args in [
        ("get", "secrets", "-n", namespace),
        ("delete", "deployment", "web", "-n", namespace, "--dry-run=server"),
        ("run", "intruder", "--image=example.invalid/x:1", "-n", namespace, "--dry-run=server"),
        ("get", "secret", "anything", "-n", "kube-system"),
    ]:
        refused = kubectl(*args)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), (args, refused.stderr)
    assert kubectl("get", "deployment", "web", "-n", namespace).returncode == 0
    wait_until(lambda: kubectl("get", "appreleases.apprelease.dev", "-n", namespace).returncode == 0, timeout=30)
