"""The floor under "apply end -> all pinned" (`make bench`, e2e/bench_scale.py): a bare controller that does
only what pinning needs, one PATCH per Deployment, as soon as the watch shows it.

It has no AppRelease, no registry, no status, no Events, no judgement: `threads` threads (the operator's
worker count) take Deployment names from a queue that one watch fills, and each sets the image to a digest
given in advance. On the same test bed, next to the same apply, the time it needs is what the API server
and the controller-manager leave for any controller; the operator's own time is read as a ratio to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from e2e.fleet import Watcher, image_of


class BarePatcher:
    def __init__(self, api: client.ApiClient, namespace: str, container: str, image: str, threads: int) -> None:
        self._apps = client.AppsV1Api(api)
        self._namespace, self._container, self._image = namespace, container, image
        self._todo: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()  # touched by the watch thread only
        self._threads = [threading.Thread(target=self._patch, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()
        self.deployments: Watcher[str] = Watcher(api, namespace, ("apps", "v1", "deployments"), self._view)

    def _view(self, obj: Mapping[str, Any]) -> str:
        """The watch's view of a Deployment (its image); a new unpinned one is queued for its one PATCH."""
        name, image = obj["metadata"]["name"], image_of(obj)
        if image != self._image and name not in self._queued:
            self._queued.add(name)
            self._todo.put(name)
        return image

    def _patch(self) -> None:
        body = {"spec": {"template": {"spec": {"containers": [{"name": self._container, "image": self._image}]}}}}
        while (name := self._todo.get()) is not None:
            self._apps.patch_namespaced_deployment(name, self._namespace, body)

    def stop(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        self.deployments.stop()
