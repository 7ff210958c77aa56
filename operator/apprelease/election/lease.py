"""The Lease as stored by the API server: read, create and conditional replace, on the official client's typed
models (V1Lease). Blocking calls: the elector runs them in its own thread, never on the event loop."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apprelease.election.rules import LeaseRecord, wire_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observed:
    """A Lease's election record and the resourceVersion it was read (or written) at."""

    record: LeaseRecord
    resource_version: str


class LeaseStore(Protocol):
    def read(self) -> Observed | None:
        """The Lease, or None when it does not exist."""
        ...

    def create(self, record: LeaseRecord) -> Observed | None:
        """Create the Lease; None when another candidate created it first (409)."""
        ...

    def replace(self, record: LeaseRecord, resource_version: str) -> Observed | None:
        """Replace the Lease if it is still at `resource_version`; None when it changed meanwhile (409)."""
        ...


class KubernetesLeaseStore:
    """One Lease (`namespace`/`name`) through CoordinationV1Api. Each call has `timeout_seconds` as its
    deadline: a hung connection must not outlive the renew deadline. Errors other than 404/409 raise."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, *, timeout_seconds: float) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self._timeout = timeout_seconds

    def read(self) -> Observed | None:
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return _observed(lease)

    def create(self, record: LeaseRecord) -> Observed | None:
        meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
        body = client.V1Lease(metadata=meta, spec=_spec(record))
        try:
            lease = self._api.create_namespaced_lease(self.namespace, body, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        return _observed(lease)

    def replace(self, record: LeaseRecord, resource_version: str) -> Observed | None:
        # A PUT carrying metadata.resourceVersion is a precondition: 409 when someone wrote in between.
        meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace, resource_version=resource_version)
        try:
            lease = self._api.replace_namespaced_lease(
                self.name,
                self.namespace,
                client.V1Lease(metadata=meta, spec=_spec(record)),
                _request_timeout=self._timeout,
            )
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        return _observed(lease)


def _spec(record: LeaseRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder or None,
        lease_duration_seconds=record.duration_seconds,
        acquire_time=wire_time(record.acquired) if record.acquired else None,
        renew_time=wire_time(record.renewed) if record.renewed else None,
        lease_transitions=record.transitions,
    )


def _observed(lease: client.V1Lease) -> Observed:
    spec = lease.spec or client.V1LeaseSpec()
    record = LeaseRecord(
        holder=spec.holder_identity or "",
        duration_seconds=spec.lease_duration_seconds or 0,
        acquired=spec.acquire_time,
        renewed=spec.renew_time,
        transitions=spec.lease_transitions or 0,
    )
    meta = lease.metadata or client.V1ObjectMeta()
    return Observed(record, str(meta.resource_version or ""))
