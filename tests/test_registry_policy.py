"""allowedRegistries: an image outside the listed registries is Stalled before any network request."""

from __future__ import annotations

import httpx
import pytest

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.controller.settings import OperatorSettings
from apprelease.core.conditions import STALLED, Reason
from apprelease.core.registrypolicy import check_registry, host_allowed
from apprelease.registry import RegistryClient, RegistrySettings
from tests.conftest import HOST, Clock, FakeCluster, FakeRegistry, World, assert_stalled, deployment


@pytest.mark.parametrize(
    ("domain", "patterns", "allowed"),
    [
        ("registry.example.com", [], True),
        ("registry.example.com", ["registry.example.com"], True),
        ("REGISTRY.example.com", ["registry.example.com"], True),
        ("registry.example.com:5000", ["registry.example.com"], False),  # another port is another service
        ("registry.example.com:5000", ["registry.example.com:5000"], True),
        ("a.example.com", ["*.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("evilexample.com", ["*.example.com"], False),
        ("a.example.com:5000", ["*.example.com"], False),
        ("a.example.com:5000", ["*.example.com:5000"], True),
        ("169.254.169.254", ["registry.example.com", "*.example.com"], False),
        ("docker.io", ["docker.io"], True),
    ],
)
def test_host_patterns(domain: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(domain, patterns) is allowed


def test_docker_hub_names_are_normalised_before_matching() -> None:
    assert check_registry("nginx", ["docker.io"]) is None
    problem = check_registry("nginx", ["registry.example.com"])
    assert problem is not None and problem.reason == Reason.REGISTRY_NOT_ALLOWED
    assert "docker.io" in problem.message


def test_setting_reads_comma_separated_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRELEASE_ALLOWED_REGISTRIES", "registry.example.com, *.corp.example ,")
    assert OperatorSettings().allowed_registries == ["registry.example.com", "*.corp.example"]


def _world(allowed: list[str]) -> World:
    cluster = FakeCluster(deployments={"web": deployment("web")})
    registry = FakeRegistry()
    clock = Clock()
    client = RegistryClient(
        RegistrySettings(max_attempts=2), transport=httpx.MockTransport(registry), sleep=lambda _: None
    )
    reconciler = Reconciler(
        cluster, client, now=lambda: "2024-05-01T12:00:00Z", monotonic=clock, allowed_registries=allowed
    )
    return World(cluster, registry, reconciler, clock)


def test_outside_image_stalls_before_any_request_and_touches_nothing() -> None:
    world = _world(["registry.internal.example"])
    world.registry.release("v1")
    world.create("v1")
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.REGISTRY_NOT_ALLOWED)
    assert world.registry.requests == []
    assert world.cluster.patched() == []
    assert [(e.type, e.reason) for e in world.events()] == [("Warning", Reason.REGISTRY_NOT_ALLOWED)]
    # Final for this generation: no request on the next pass either.
    world.reconcile()
    assert world.registry.requests == []


def test_a_registry_allowed_later_is_picked_up_without_a_spec_change() -> None:
    world = _world(["registry.internal.example"])
    digest = world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    assert_stalled(world, Reason.REGISTRY_NOT_ALLOWED)
    world.reconciler.allowed_registries = [HOST]  # the operator restarted with a wider list
    world.reconcile()
    assert world.cluster.images()["web"] == f"{HOST}/shop/web@{digest}"
    assert world.condition(STALLED)[0] == "False"
