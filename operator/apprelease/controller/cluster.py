"""The Kubernetes side of a reconcile: a small port (Protocol) and its implementation on the official client.

Calls are blocking; the operator runs them in worker threads, never on the event loop.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apprelease.controller.eventqueue import EventQueue
from apprelease.controller.fencing import Conflict, conditional
from apprelease.core.api import FIELD_MANAGER, GROUP, PLURAL, VERSION
from apprelease.core.fields import Fields
from apprelease.core.workloads import Kind

log = logging.getLogger(__name__)

COMPONENT = "apprelease-operator"
# A ServiceAccount's imagePullSecrets, as read, are reused this long (seconds) and for this many accounts: a
# wave of new AppReleases in one namespace reads its ServiceAccount once per period, not once per pin (issue
# 19). Pods take an account's secrets when they are created (the ServiceAccount admission plugin), so a view
# this old chooses what a pod made at that time would have used. Reused only for the same namespace and name.
SERVICE_ACCOUNT_SECONDS = 10.0
SERVICE_ACCOUNTS_KEPT = 1024
MAX_ACCOUNT_PULL_SECRETS = 64  # names kept per account: a tenant's account could list thousands
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


# An object as the API server's JSON (camelCase keys). Readers narrow it with typed views (core/workloads.py)
# or isinstance checks: nothing from the API server is trusted to have the shape its schema promises.
JsonObject = dict[str, object]
Patch = dict[str, object]  # a JSON (merge or strategic-merge) patch body


class Cluster(Protocol):
    def get_apprelease(self, namespace: str, name: str) -> JsonObject | None: ...
    def patch_apprelease_status(self, namespace: str, name: str, status: Patch, resource_version: str = "") -> str: ...
    def get_workload(self, kind: Kind, namespace: str, name: str) -> JsonObject | None: ...
    def patch_workload(self, kind: Kind, namespace: str, name: str, body: Patch) -> JsonObject: ...
    def list_pods(self, namespace: str, selector: str) -> list[JsonObject]: ...
    def list_replica_sets(self, namespace: str, selector: str) -> list[JsonObject]: ...
    def delete_pod(self, namespace: str, name: str) -> None: ...
    def get_docker_config(self, namespace: str, secret: str) -> bytes | None: ...
    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]: ...
    def post_event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None: ...
    # spec.verify's keys and trusted root (controller.verification.TrustSources).
    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...


class KubernetesCluster:
    """Cluster on the generated `kubernetes` client; one ApiClient shared by all worker threads.

    Every call carries a timeout: a hung API server connection must not hold a worker forever.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        timeout_seconds: float = 30.0,
        instance: str = COMPONENT,
        events: EventQueue | None = None,
    ) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._timeout = timeout_seconds
        # Events name the replica that posted them (reportingInstance, the Events API's "ID of the controller
        # instance", at most 128 characters): with shards or a leader hand-over, who acted is on record.
        self._instance = instance[:128]
        # With a queue, Events are posted by its threads and a pass does not wait for them (see eventqueue).
        self._events = events
        self._accounts: TTLCache[tuple[str, str], tuple[str, ...]] = TTLCache(
            SERVICE_ACCOUNTS_KEPT, ttl=SERVICE_ACCOUNT_SECONDS
        )
        self._accounts_lock = threading.Lock()  # worker threads share the cache

    def get_apprelease(self, namespace: str, name: str) -> JsonObject | None:
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    def patch_apprelease_status(self, namespace: str, name: str, status: Patch, resource_version: str = "") -> str:
        """Merge-patch the status, conditional on `resource_version` when given (see `fencing`); returns the
        new resourceVersion. Raises `fencing.Conflict` when the AppRelease changed since (409)."""
        # A merge patch replaces lists whole, so history and conditions are written as one consistent unit.
        body = conditional({"status": status}, resource_version)
        try:
            written = self._merge_patch(self._custom.patch_namespaced_custom_object_status, namespace, name, body)
        except ApiException as err:
            if err.status == 409:
                raise Conflict(
                    f"AppRelease {namespace}/{name} changed since resourceVersion {resource_version}"
                ) from err
            raise
        return str(Fields(written).sub("metadata").text("resourceVersion"))

    def patch_apprelease_spec(self, namespace: str, name: str, spec: Patch, field_manager: str) -> None:
        self._merge_patch(self._custom.patch_namespaced_custom_object, namespace, name, {"spec": spec}, field_manager)

    def annotate_apprelease(self, namespace: str, name: str, annotations: dict[str, str], field_manager: str) -> None:
        body: Patch = {"metadata": {"annotations": annotations}}
        self._merge_patch(self._custom.patch_namespaced_custom_object, namespace, name, body, field_manager)

    def _merge_patch(
        self,
        call: Callable[..., object],
        namespace: str,
        name: str,
        body: Patch,
        field_manager: str = FIELD_MANAGER,
    ) -> object:
        """A JSON merge patch of one AppRelease (or its status) through the generated client; the object."""
        return call(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            field_manager=field_manager,
            _content_type=MERGE_PATCH,
            _request_timeout=self._timeout,
        )

    # Workloads, pods and ReplicaSets are read as the API server's JSON (`_preload_content=False`), not through
    # the client's typed models: the round trip model -> dict drops fields the models do not know (a newer API
    # server's) and cost more CPU per pass than the rest of a reconcile (profiled with 1,000 AppReleases).
    def get_workload(self, kind: Kind, namespace: str, name: str) -> JsonObject | None:
        try:
            response = self._workload_call(kind, "read")(
                name, namespace, _request_timeout=self._timeout, _preload_content=False
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return _json(response)

    def patch_workload(self, kind: Kind, namespace: str, name: str, body: Patch) -> JsonObject:
        response = self._workload_call(kind, "patch")(
            name,
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            _content_type=STRATEGIC_MERGE_PATCH,
            _request_timeout=self._timeout,
            _preload_content=False,
        )
        return _json(response)

    def _workload_call(self, kind: Kind, verb: str) -> Callable[..., object]:
        """The generated client's method for a verb on a kind, e.g. AppsV1Api.patch_namespaced_stateful_set."""
        api: object = self._batch if kind == Kind.CRON_JOB else self._apps
        call: Callable[..., object] = getattr(api, f"{verb}_namespaced_{_SNAKE[kind]}")
        return call

    def list_pods(self, namespace: str, selector: str) -> list[JsonObject]:
        pods = self._core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=self._timeout, _preload_content=False
        )
        return _items(_json(pods))

    def list_replica_sets(self, namespace: str, selector: str) -> list[JsonObject]:
        """The ReplicaSets under a Deployment's selector: which of them the Deployment owns (by uid) says which
        pods are its own."""
        sets = self._apps.list_namespaced_replica_set(
            namespace, label_selector=selector, _request_timeout=self._timeout, _preload_content=False
        )
        return _items(_json(sets))

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._core.delete_namespaced_pod(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status != 404:
                raise

    def get_docker_config(self, namespace: str, secret: str) -> bytes | None:
        try:
            obj = self._core.read_namespaced_secret(secret, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status in (403, 404):
                log.warning("imagePullSecret %s/%s cannot be read (HTTP %s)", namespace, secret, err.status)
                return None
            raise
        data = obj.data or {}
        raw = data.get(".dockerconfigjson")
        if raw is None:
            log.warning("Secret %s/%s is not of type kubernetes.io/dockerconfigjson", namespace, secret)
            return None
        return base64.b64decode(raw)

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded; None when it is missing or the operator may not read it."""
        try:
            obj = self._core.read_namespaced_secret(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status in (403, 404):
                log.warning("Secret %s/%s cannot be read (HTTP %s)", namespace, name, err.status)
                return None
            raise
        return {key: base64.b64decode(value) for key, value in (obj.data or {}).items()}

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            obj = self._core.read_namespaced_config_map(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status in (403, 404):
                return None
            raise
        return dict(obj.data or {})

    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]:
        """The names in a ServiceAccount's imagePullSecrets, in order, the first MAX_ACCOUNT_PULL_SECRETS; []
        when it is missing or unreadable. Read at most once per SERVICE_ACCOUNT_SECONDS per account."""
        key = (namespace, name)
        with self._accounts_lock:
            kept = self._accounts.get(key)
        if kept is not None:
            return list(kept)
        try:
            sa = self._core.read_namespaced_service_account(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status not in (403, 404):
                raise
            names: tuple[str, ...] = ()
        else:
            names = tuple(ref.name for ref in (sa.image_pull_secrets or []) if ref.name)
            if len(names) > MAX_ACCOUNT_PULL_SECRETS:
                log.warning(
                    "ServiceAccount %s/%s names %d imagePullSecrets; only the first %d are used",
                    namespace,
                    name,
                    len(names),
                    MAX_ACCOUNT_PULL_SECRETS,
                )
                names = names[:MAX_ACCOUNT_PULL_SECRETS]
        with self._accounts_lock:
            self._accounts[key] = names
        return list(names)

    def post_event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
        """Post an Event (`involved`: apiVersion, kind, name, namespace, uid, resourceVersion of its object): at
        once, or through the event queue when there is one (the pass goes on; see eventqueue)."""
        send = functools.partial(self._post_event, dict(involved), type_, reason, message, dt.datetime.now(dt.UTC))
        if self._events is None:
            send()
        else:
            # A share per namespace and type: a tenant's flood of Normal Events never drops its own Warnings.
            self._events.submit(send, f"{involved.get('namespace', '')}/{type_}")

    def _post_event(self, involved: dict[str, str], type_: str, reason: str, message: str, now: dt.datetime) -> None:
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{involved['name']}.", namespace=involved["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=involved["name"],
                namespace=involved["namespace"],
                uid=involved.get("uid") or None,
                resource_version=involved.get("resourceVersion") or None,
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self._instance,
            action=reason,
        )
        try:
            self._core.create_namespaced_event(involved["namespace"], event, _request_timeout=self._timeout)
        except ApiException as err:
            # An event is a courtesy; failing to post one must not fail the reconcile.
            log.warning("could not post event %s on %s: HTTP %s", reason, involved["name"], err.status)


def _json(response: object) -> JsonObject:
    """The body of a raw (not preloaded) response as JSON; {} when it is not an object."""
    data = json.loads(getattr(response, "data", b"") or b"{}")
    return data if isinstance(data, dict) else {}


def _items(listed: JsonObject) -> list[JsonObject]:
    items = listed.get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


_SNAKE = {
    Kind.DEPLOYMENT: "deployment",
    Kind.STATEFUL_SET: "stateful_set",
    Kind.DAEMON_SET: "daemon_set",
    Kind.CRON_JOB: "cron_job",
}
