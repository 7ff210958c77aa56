"""Reading and patching AppReleases for the CLI, with the user's kubeconfig."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from apprelease.api import GROUP, PLURAL, VERSION, AppRelease


class KubeError(RuntimeError):
    """A cluster call failed; the message is one line for the user."""


class Releases:
    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active) if context else active
            default_ns = (chosen or {}).get("context", {}).get("namespace") or "default"
        except (config.ConfigException, FileNotFoundError):
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException as err:
                raise KubeError("no kubeconfig found: set KUBECONFIG or pass --kubeconfig") from err
            default_ns = "default"
        self.namespace = namespace or default_ns
        self._api = client.CustomObjectsApi(client.ApiClient(configuration))

    def get(self, name: str) -> AppRelease:
        return AppRelease.from_k8s(self.get_raw(name))

    def get_raw(self, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self._api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err
        return obj

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        try:
            self._api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec})
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err


def _message(err: ApiException, what: str) -> str:
    if err.status == 404:
        return f"{what} not found"
    if err.status == 403:
        return f"not allowed to access {what}"
    return f"{what}: HTTP {err.status} {err.reason}"
