"""Reading and patching AppReleases for the CLI, with the user's kubeconfig, through the operator's adapter."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from apprelease.api import AppRelease
from apprelease.cluster import KubernetesCluster
from apprelease.fieldowners import CLI_MANAGER as CLI_FIELD_MANAGER
from apprelease.kubeclient import KubeConfigError, connect


class KubeError(RuntimeError):
    """A cluster call failed; the message is one line for the user."""


class Releases:
    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        try:
            connection = connect(kubeconfig, context)
        except KubeConfigError as err:
            raise KubeError(str(err)) from err
        self.namespace = namespace or connection.namespace
        self.api_client = connection.api_client
        self._cluster = KubernetesCluster(connection.api_client)

    def get(self, name: str) -> AppRelease:
        return AppRelease.from_k8s(self.get_raw(name))

    def get_raw(self, name: str) -> dict[str, Any]:
        what = f"AppRelease {self.namespace}/{name}"
        try:
            obj = self._cluster.get_apprelease(self.namespace, name)
        except ApiException as err:
            raise KubeError(_message(err, what)) from err
        if obj is None:
            raise KubeError(f"{what} not found")
        return obj

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        try:
            self._cluster.patch_apprelease_spec(self.namespace, name, spec, CLI_FIELD_MANAGER)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        try:
            self._cluster.annotate_apprelease(self.namespace, name, annotations, CLI_FIELD_MANAGER)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err


def _message(err: ApiException, what: str) -> str:
    if err.status == 404:
        return f"{what} not found"
    if err.status == 403:
        return f"not allowed to access {what}"
    return f"{what}: HTTP {err.status} {err.reason}"
