"""Does the API server honour a shard selector? Asked once, when an operator starts in shardRange mode.

Why: an API server without the ShardedListAndWatch feature gate (alpha in Kubernetes 1.36/1.37, off by
default) silently ignores `shardSelector` (kopf's `settings.watching.shard_selectors` documents this too), so
every shard would watch and reconcile every AppRelease: shards would overlap with nothing to tell. A server that
honours it echoes the selector in the list's `metadata.shardInfo.selector` (built-in resources; a custom
resource's list is filtered but carries no shardInfo on 1.37.2, so the question is asked of Deployments, which
every operator may list). The gate is one switch of the whole server: honoured for Deployments means honoured
for AppReleases (e2e/test_shards.py lists both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

MAX_ANSWER_BYTES = 1 << 20  # a one-item list; more is not an answer to this question


class ShardingUnsupported(Exception):
    """The API server ignores shardSelector: a shardRange operator must not start."""


@dataclass(frozen=True)
class ShardProbe:
    """What the server said to a one-item list of Deployments carrying our selector."""

    echoed: str | None  # metadata.shardInfo.selector, None when absent

    def check(self, selector: str) -> None:
        """Raises ShardingUnsupported unless the server echoed `selector`."""
        if self.echoed == selector:
            return
        if self.echoed is None:
            raise ShardingUnsupported(
                "the API server ignores shardSelector (no metadata.shardInfo in its answer): enable the "
                "ShardedListAndWatch feature gate on kube-apiserver, or shard by label (APPRELEASE_SHARD) instead "
                "of APPRELEASE_SHARD_RANGE; without it every shard would reconcile every AppRelease"
            )
        raise ShardingUnsupported(f"the API server applied another shard selector: {self.echoed!r}, not {selector!r}")


def probe_request(selector: str, namespace: str | None) -> tuple[str, list[tuple[str, str]]]:
    """The list request (path, query): one Deployment, cluster-wide or in `namespace` (what the operator may
    list: it watches Deployments there)."""
    path = (
        f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/deployments"
        if namespace
        else "/apis/apps/v1/deployments"
    )
    return path, [("limit", "1"), ("shardSelector", selector)]


def parse_answer(raw: bytes) -> ShardProbe:
    """The list's metadata.shardInfo.selector; ValueError for an answer that is not a JSON list object."""
    if len(raw) > MAX_ANSWER_BYTES:
        raise ValueError(f"the API server's answer is over {MAX_ANSWER_BYTES} bytes")
    answer = json.loads(raw)
    if not isinstance(answer, dict):
        raise ValueError("the API server's answer is not a JSON object")
    meta = answer.get("metadata")
    info = meta.get("shardInfo") if isinstance(meta, dict) else None
    echoed = info.get("selector") if isinstance(info, dict) else None
    return ShardProbe(echoed if isinstance(echoed, str) else None)


def probe(api_client: client.ApiClient, selector: str, namespace: str | None, *, timeout_seconds: float) -> ShardProbe:
    """Ask the server (blocking; run it off the event loop). ApiException and network errors propagate: the
    caller retries them; only a clear answer without the echo is ShardingUnsupported (see `ShardProbe.check`)."""
    path, query = probe_request(selector, namespace)
    request = api_client.param_serialize(
        "GET", path, query_params=query, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api_client.call_api(*request, _request_timeout=timeout_seconds)
    raw = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=response.reason)
    return parse_answer(raw)
