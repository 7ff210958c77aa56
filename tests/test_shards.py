"""Sharding rules (issue 19): shard labels and hash ranges as the API server's selectors, one Lease per shard,
ranges that split the namespaces with no overlap and no gap, and kopf's watch settings they become."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kubernetes.client import ApiClient

from apprelease.controller import handlers
from apprelease.controller.cluster import KubernetesCluster
from apprelease.controller.handlers import watch_shard
from apprelease.controller.runtime import Runtime
from apprelease.controller.settings import OperatorSettings
from apprelease.election import serverside, shards


def test_fnv1a64_is_the_hash_the_api_server_reads() -> None:
    # The published FNV-1a 64-bit test vectors.
    assert shards.fnv1a64("") == 0xCBF29CE484222325
    assert shards.fnv1a64("a") == 0xAF63DC4C8601EC8C
    assert shards.fnv1a64("foobar") == 0x85944171F73967E8


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_split_ranges_give_every_namespace_exactly_one_shard(count: int) -> None:
    ranges = [shards.parse_range(text) for text in shards.split(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 1 << 64
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # contiguous: no gap, no overlap
    for i in range(1000):
        digest = shards.fnv1a64(f"team-{i}")
        assert sum(start <= digest < end for start, end in ranges) == 1


def test_range_selector_and_lease_names() -> None:
    low, high = shards.split(2)
    assert shards.range_selector(low) == (
        "shardRange(object.metadata.namespace, '0x0000000000000000', '0x8000000000000000')"
    )
    assert high.endswith("-0x10000000000000000")
    names = {
        shards.lease_name("apprelease", None, None),
        shards.lease_name("apprelease", "a", None),
        shards.lease_name("apprelease", "b", None),
        shards.lease_name("apprelease", None, low),
        shards.lease_name("apprelease", None, high),
    }
    assert len(names) == 5 and "apprelease" in names
    assert shards.label_selector("eu-1") == "apprelease.dev/shard=eu-1"


@pytest.mark.parametrize("text", ["", "0x10", "0x20-0x10", "0x0-0x20000000000000000", "10-20", "0x0-0xZZ"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard range"):
        shards.parse_range(text)
    with pytest.raises(ValueError, match="shard range"):
        OperatorSettings(shard_range=text)


@pytest.mark.parametrize("shard", ["", "-a", "a b", "x" * 64, "a,b=c"])
def test_bad_shard_labels_are_refused(shard: str) -> None:
    with pytest.raises(ValueError, match="label value"):
        OperatorSettings(shard=shard)


def test_kopf_watches_only_the_shard() -> None:
    kopf_settings = kopf.OperatorSettings()
    watch_shard(kopf_settings, OperatorSettings(shard="a", list_chunk_size=200))
    assert kopf_settings.watching.chunk_size == 200
    assert list(kopf_settings.watching.label_selectors.values()) == ["apprelease.dev/shard=a"]
    assert not list(kopf_settings.watching.shard_selectors.values())

    kopf_settings = kopf.OperatorSettings()
    low = shards.split(2)[0]
    watch_shard(kopf_settings, OperatorSettings(shard_range=low, list_chunk_size=0))
    assert kopf_settings.watching.chunk_size is None
    selectors = list(kopf_settings.watching.shard_selectors.values())
    assert len(selectors) == 5 and set(selectors) == {shards.range_selector(low)}  # AppReleases + 4 kinds
    assert OperatorSettings(shard_range=low, leader_election_name="op").lease_name() == "op-0000000000000000"


# Answers of the test bed's kube-apiserver 1.37.2 to GET /apis/apps/v1/deployments?limit=1&shardSelector=...
GATE_ON = (
    b'{"kind":"DeploymentList","apiVersion":"apps/v1",'
    b'"metadata":{"resourceVersion":"99733","shardInfo":{"selector":"SELECTOR"}},"items":[]}'
)
GATE_OFF = b'{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"99731"},"items":[]}'


def test_a_server_that_echoes_the_selector_honours_it() -> None:
    selector = shards.range_selector(shards.split(2)[0])
    answer = serverside.parse_answer(GATE_ON.replace(b"SELECTOR", selector.encode()))
    answer.check(selector)  # no error


def test_a_server_without_the_feature_gate_is_refused() -> None:
    selector = shards.range_selector(shards.split(2)[0])
    with pytest.raises(serverside.ShardingUnsupported, match="ShardedListAndWatch feature gate"):
        serverside.parse_answer(GATE_OFF).check(selector)
    other = serverside.parse_answer(GATE_ON.replace(b"SELECTOR", b"shardRange(object.metadata.uid, '0x0', '0x1')"))
    with pytest.raises(serverside.ShardingUnsupported, match="another shard selector"):
        other.check(selector)


@pytest.mark.parametrize("raw", [b"[]", b"not json", b"{" + b" " * serverside.MAX_ANSWER_BYTES + b"}"])
def test_an_answer_that_is_not_a_list_object_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        serverside.parse_answer(raw)


def test_the_probe_asks_for_one_deployment_where_the_operator_may_list() -> None:
    assert serverside.probe_request("S", None) == (
        "/apis/apps/v1/deployments",
        [("limit", "1"), ("shardSelector", "S")],
    )
    assert serverside.probe_request("S", "team-a")[0] == "/apis/apps/v1/namespaces/team-a/deployments"


async def test_an_unsupported_server_stops_the_operator_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise serverside.ShardingUnsupported("the API server ignores shardSelector")

    monkeypatch.setattr(Runtime, "from_environment", staticmethod(refuse))
    with pytest.raises(kopf.PermanentError, match="APPRELEASE_SHARD_RANGE: the API server ignores"):
        await handlers.start_runtime()


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_balanced_ranges_share_similar_namespaces_evenly(count: int) -> None:
    namespaces = [f"team-{i:02d}" for i in range(50)]
    assert len({shards.fnv1a64(ns) >> 60 for ns in namespaces}) == 1  # clustered: split(2) would not divide them
    ranges = [shards.parse_range(text) for text in shards.balanced(namespaces, count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 1 << 64
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    shares = [sum(start <= shards.fnv1a64(ns) < end for ns in namespaces) for start, end in ranges]
    assert sum(shares) == 50 and max(shares) - min(shares) <= 1
    assert shards.balanced(["only"], 3) == shards.split(3)  # fewer namespaces than shards: an even split


class _EventSink:
    def __init__(self) -> None:
        self.posted: list[Any] = []

    def create_namespaced_event(self, namespace: str, event: Any, **_: Any) -> None:
        self.posted.append(event)


def test_events_name_the_replica_that_posted_them() -> None:
    """reportingInstance is the candidate's identity (the pod name), so shards and hand-overs can be checked."""
    cluster = KubernetesCluster(ApiClient(), instance="op-7d9f-abcde")
    sink = _EventSink()
    cluster._core = sink  # type: ignore[assignment]  # the seam: the Events API, recorded
    cluster.post_event({"namespace": "shop", "name": "web", "kind": "AppRelease"}, "Normal", "Deployed", "r1")
    assert [e.reporting_instance for e in sink.posted] == ["op-7d9f-abcde"]
    assert sink.posted[0].reporting_component == "apprelease-operator"
    assert KubernetesCluster(ApiClient(), instance="x" * 300)._instance == "x" * 128  # the API's limit
