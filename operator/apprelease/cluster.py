"""The Kubernetes side of a reconcile: a small port (Protocol) and its implementation on the official client.

Calls are blocking; the operator runs them in worker threads, never on the event loop.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apprelease.api import FIELD_MANAGER, GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

COMPONENT = "apprelease-operator"


class Cluster(Protocol):
    def get_apprelease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_apprelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def get_docker_config(self, namespace: str, secret: str) -> bytes | None: ...
    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]: ...
    def post_event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None: ...


class KubernetesCluster:
    """Cluster on the official `kubernetes` client; one ApiClient shared by all worker threads."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._api = api_client

    def get_apprelease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return obj
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def patch_apprelease_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # A merge patch replaces lists whole, so history and conditions are written as one consistent unit.
        self._custom.api_client.call_api(
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
            "PATCH",
            query_params=[("fieldManager", FIELD_MANAGER)],
            header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
            body={"status": status},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = self._apps.read_namespaced_deployment(name, namespace, _preload_content=False)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return _json(response)

    def patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._api.call_api(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            "PATCH",
            query_params=[("fieldManager", FIELD_MANAGER)],
            header_params={
                "Content-Type": "application/strategic-merge-patch+json",
                "Accept": "application/json",
            },
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return dict(response) if isinstance(response, dict) else {}

    def get_docker_config(self, namespace: str, secret: str) -> bytes | None:
        try:
            obj = self._core.read_namespaced_secret(secret, namespace)
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

    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]:
        try:
            sa = self._core.read_namespaced_service_account(name, namespace)
        except ApiException as err:
            if err.status in (403, 404):
                return []
            raise
        return [ref.name for ref in (sa.image_pull_secrets or []) if ref.name]

    def post_event(self, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
        now = dt.datetime.now(dt.UTC)
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
            reporting_instance=COMPONENT,
            action=reason,
        )
        try:
            self._core.create_namespaced_event(involved["namespace"], event)
        except ApiException as err:
            # An event is a courtesy; failing to post one must not fail the reconcile.
            log.warning("could not post event %s on %s: HTTP %s", reason, involved["name"], err.status)


def _json(response: Any) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(response.data)
    return data
