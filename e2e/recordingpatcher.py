"""The design's floor under "apply end -> all pinned" (`make bench`, e2e/bench_scale.py): the bare patcher
(e2e/barepatcher.py) plus the one write DESIGN's crash-safety rule puts before every pin.

The rule: the revision is recorded in the AppRelease's status, by a write conditional on the resourceVersion
it was decided from, before any workload is patched (a crash after the patch cannot lose which digest runs;
fencing, issue 19). So per AppRelease: the status PATCH (merge patch carrying `metadata.resourceVersion`, the
API server's optimistic-concurrency precondition) of the body its watch delivered, then the Deployment's PATCH.
No GET, no registry (the digest is given), no Events, no judgement, no pass after the pin: the operator's
first pass of an AppRelease with nothing else. Measured next to the same apply as the operator (a Deployment
and its AppRelease each), its time is the least any controller that keeps the rule needs on this machine.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from e2e.fleet import GROUP, PLURAL, VERSION, Watcher, image_of


class RecordingPatcher:
    def __init__(
        self, api: client.ApiClient, namespace: str, container: str, image: str, version: str, threads: int
    ) -> None:
        """`image`: the pinned reference (`repo@sha256:...`) every Deployment gets; `version`: the tag it
        records; `threads`: the operator's worker count."""
        self._custom, self._apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
        self._namespace, self._container, self._image, self._version = namespace, container, image, version
        self._todo: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._queued: set[str] = set()  # touched by the watch thread only
        self.conflicts = 0  # status writes refused (409) and done again from a fresh read (under _lock)
        self.failures: list[str] = []  # other errors: the run stops waiting on them (see _work)
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()
        self.releases: Watcher[int] = Watcher(api, namespace, (GROUP, VERSION, PLURAL), self._view)
        self.deployments: Watcher[str] = Watcher(api, namespace, ("apps", "v1", "deployments"), image_of)

    def _view(self, obj: Mapping[str, Any]) -> int:
        """The watch's view of an AppRelease (its recorded revision); a new one is queued with the
        resourceVersion its watch event carries."""
        meta, status = obj["metadata"], obj.get("status") or {}
        name, revision = meta["name"], int(status.get("revision") or 0)
        if not revision and name not in self._queued:
            self._queued.add(name)
            self._todo.put((name, meta["resourceVersion"]))
        return revision

    def _record(self, name: str, resource_version: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        digest = self._image.split("@", 1)[1]
        entry = {"revision": 1, "version": self._version, "digest": digest, "deployedAt": now, "outcome": "InProgress"}
        status = {"revision": 1, "version": self._version, "digest": digest, "history": [entry]}
        while True:
            body = {"metadata": {"resourceVersion": resource_version}, "status": status}
            try:
                self._custom.patch_namespaced_custom_object_status(GROUP, VERSION, self._namespace, PLURAL, name, body)
                return
            except client.ApiException as err:
                if err.status != 409:
                    raise
                with self._lock:
                    self.conflicts += 1  # decided from an old copy: read it afresh, as the operator's requeue does
                fresh = self._custom.get_namespaced_custom_object(GROUP, VERSION, self._namespace, PLURAL, name)
                assert isinstance(fresh, dict)
                resource_version = fresh["metadata"]["resourceVersion"]

    def _work(self) -> None:
        body = {"spec": {"template": {"spec": {"containers": [{"name": self._container, "image": self._image}]}}}}
        while (item := self._todo.get()) is not None:
            name, resource_version = item
            try:
                self._record(name, resource_version)
                self._apps.patch_namespaced_deployment(name, self._namespace, body)  # the AppRelease's namesake
            except Exception as err:  # noqa: BLE001 - kept, and the bench fails on it instead of waiting
                with self._lock:
                    self.failures.append(f"{name}: {err}")

    def stop(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        self.releases.stop()
        self.deployments.stop()
