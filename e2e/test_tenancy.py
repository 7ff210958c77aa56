"""Tenancy against the real API server and the real operator: an AppRelease cannot send the operator elsewhere."""

from __future__ import annotations

import pytest

from e2e.images import Pushed
from e2e.releases import (
    apply,
    condition,
    container_images,
    deployment_manifest,
    get_release,
    posted_events,
    release_manifest,
    wait_condition,
)
from e2e.support import Operator, Testbed


@pytest.mark.parametrize(
    "image",
    [
        "registry.evil.example/shop/web",  # a registry nobody allowed
        "169.254.169.254/latest/meta-data",  # cloud metadata: never reached
        "127.0.0.1:22/probe/ssh",  # a port scan of the operator's own host
    ],
)
def test_an_image_outside_the_allowed_registries_is_stalled_and_changes_nothing(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], image: str
) -> None:
    original = {"web": f"{web['v1.0.0'].repository}:v0"}
    # Opted in: only the registry is refused.
    apply(testbed, deployment_manifest(namespace, "web", original, release="web"))
    apply(testbed, release_manifest(namespace, "web", image, "v1.0.0", [{"kind": "Deployment", "name": "web"}]))

    release = wait_condition(testbed, namespace, "web", "Stalled", "True", "RegistryNotAllowed")
    message = condition(release, "Stalled")["message"]
    assert image.split("/")[0] in message and "allowedRegistries" in message
    assert condition(release, "Ready")["status"] == "False"
    assert container_images(testbed, namespace, "web") == original
    assert [e["type"] for e in posted_events(testbed, namespace, "RegistryNotAllowed")] == ["Warning"]
    assert get_release(testbed, namespace, "web")["status"].get("revision", 0) == 0
