"""Reading and patching AppReleases for the CLI, with the user's kubeconfig, through the operator's adapter."""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apprelease.controller.cluster import MERGE_PATCH, JsonObject, KubernetesCluster
from apprelease.controller.kubeclient import KubeConfigError, connect
from apprelease.core.api import KIND, AppRelease
from apprelease.core.fieldowners import CLI_MANAGER as CLI_FIELD_MANAGER
from apprelease.core.fields import Fields
from apprelease.core.workloads import Kind

TIMEOUT_SECONDS = 30  # per API call: a CLI must not hang on a stuck connection
_SNAKE = {
    Kind.DEPLOYMENT: "deployment",
    Kind.STATEFUL_SET: "stateful_set",
    Kind.DAEMON_SET: "daemon_set",
    Kind.CRON_JOB: "cron_job",
}


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
        self._core = client.CoreV1Api(connection.api_client)
        self._apps = client.AppsV1Api(connection.api_client)
        self._batch = client.BatchV1Api(connection.api_client)

    def get(self, name: str) -> AppRelease:
        return AppRelease.from_k8s(self.get_raw(name))

    def get_raw(self, name: str) -> JsonObject:
        what = f"AppRelease {self.namespace}/{name}"
        try:
            obj = self._cluster.get_apprelease(self.namespace, name)
        except ApiException as err:
            raise KubeError(_message(err, what)) from err
        if obj is None:
            raise KubeError(f"{what} not found")
        return obj

    def uid(self, name: str) -> str | None:
        """The uid of AppRelease `name`, or None when it does not exist."""
        try:
            obj = self._cluster.get_apprelease(self.namespace, name)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err
        uid = Fields(obj or {}).sub("metadata").value("uid")
        return uid if isinstance(uid, str) and uid else None

    def patch_workload_metadata(
        self, kind: Kind, name: str, labels: dict[str, str | None], annotations: dict[str, str | None]
    ) -> None:
        """Set (a value) or remove (None) labels and annotations of a workload: a JSON merge patch, as the CLI."""
        api = self._batch if kind == Kind.CRON_JOB else self._apps
        patch = getattr(api, f"patch_namespaced_{_SNAKE[kind]}")
        body = {"metadata": {"labels": labels, "annotations": annotations}}
        try:
            patch(
                name,
                self.namespace,
                body,
                field_manager=CLI_FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _request_timeout=TIMEOUT_SECONDS,
            )
        except ApiException as err:
            raise KubeError(_message(err, f"{kind} {self.namespace}/{name}")) from err

    def patch_spec(self, name: str, spec: Mapping[str, object]) -> None:
        try:
            self._cluster.patch_apprelease_spec(self.namespace, name, dict(spec), CLI_FIELD_MANAGER)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        try:
            self._cluster.annotate_apprelease(self.namespace, name, annotations, CLI_FIELD_MANAGER)
        except ApiException as err:
            raise KubeError(_message(err, f"AppRelease {self.namespace}/{name}")) from err

    def events(self, name: str, uid: str | None) -> list[Mapping[str, object]]:
        """Events about the AppRelease, as the API server stores them (camelCase), oldest first."""
        selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
        try:
            response = self._core.list_namespaced_event(
                self.namespace, field_selector=selector, _request_timeout=TIMEOUT_SECONDS
            )
        except ApiException as err:
            raise KubeError(_message(err, f"Events of {self.namespace}/{name}")) from err
        found = self._plain(response).get("items")
        items = [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []
        # An earlier object of the same name left Events too; only this one's count.
        mine = [e for e in items if not uid or Fields(e).sub("involvedObject").value("uid") in (None, "", uid)]
        return sorted(mine, key=lambda e: event_time(Fields(e))[:19])  # whole seconds: some carry microseconds

    def workload(self, kind: str, name: str) -> JsonObject | None:
        """A workload as raw JSON, or None when it does not exist."""
        readers = {
            Kind.DEPLOYMENT: self._apps.read_namespaced_deployment,
            Kind.STATEFUL_SET: self._apps.read_namespaced_stateful_set,
            Kind.DAEMON_SET: self._apps.read_namespaced_daemon_set,
            Kind.CRON_JOB: self._batch.read_namespaced_cron_job,
        }
        if kind not in readers:
            return None
        reader = readers[Kind(kind)]
        try:
            response = reader(name, self.namespace, _request_timeout=TIMEOUT_SECONDS)
        except ApiException as err:
            if err.status == 404:
                return None
            raise KubeError(_message(err, f"{kind} {self.namespace}/{name}")) from err
        return self._plain(response)

    def _plain(self, model: object) -> JsonObject:
        """The API server's JSON shape (camelCase), as kubectl shows it."""
        data = self.api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return data if isinstance(data, dict) else {}


def event_time(event: Fields) -> str:
    """When an Event last happened; core/v1 Events fill one of three fields depending on who posted them."""
    return str(
        event.sub("series").value("lastObservedTime")
        or event.value("lastTimestamp")
        or event.value("eventTime")
        or event.value("firstTimestamp")
        or event.sub("metadata").value("creationTimestamp")
        or ""
    )


def _message(err: ApiException, what: str) -> str:
    if err.status == 404:
        return f"{what} not found"
    if err.status == 403:
        return f"not allowed to access {what}"
    return f"{what}: HTTP {err.status} {err.reason}"
