"""The Reconciler end to end on fakes: an in-memory cluster and a real RegistryClient on httpx.MockTransport."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from apprelease.controller.reconciler import Result
from apprelease.core.api import (
    ANNOTATION_REVISION,
    ANNOTATION_VERSION,
    LABEL_RELEASE,
    AppReleaseStatus,
    Outcome,
    Source,
)
from apprelease.core.conditions import READY, RECONCILING, STALLED, Reason
from apprelease.core.reference import parse
from tests.conftest import (
    HOST,
    IMAGE,
    NAME,
    NS,
    PASSWORD,
    POLL,
    RESYNC,
    USER,
    WRONG_PASSWORD,
    Crash,
    World,
    assert_stalled,
    assert_waiting,
    basic,
    commit_of,
    deployment,
    pinned,
)


# --- a release's life ----------------------------------------------------------------------------------
def test_first_release_records_revision_then_succeeds_when_rolled_out(world: World) -> None:
    digest = world.registry.release("v1")
    world.create("v1")

    assert world.reconcile() == Result(requeue_after=POLL)
    status = world.status()
    assert (status.revision, status.version, status.digest, status.git_commit) == (1, "v1", digest, commit_of("v1"))
    assert status.image == pinned(digest)
    [entry] = status.history
    assert (entry.revision, entry.source, entry.outcome) == (1, Source.REGISTRY, Outcome.IN_PROGRESS)
    assert world.condition(READY) == ("False", Reason.PROGRESSING)
    assert world.condition(RECONCILING) == ("True", Reason.PROGRESSING)
    assert world.cluster.images() == {"web": pinned(digest), "proxy": "envoy:1.30"}
    assert world.cluster.template_annotations() == {ANNOTATION_VERSION: "v1", ANNOTATION_REVISION: "1"}
    assert world.cluster.calls[0] == "status"  # the revision is recorded before any workload is touched
    assert [(e.type, e.reason) for e in world.events()] == [("Normal", "Deploying")]

    world.cluster.roll_out()
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.status().history[0].outcome == Outcome.SUCCEEDED
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.condition(RECONCILING)[0] == "False"
    assert world.condition(STALLED)[0] == "False"
    assert world.status().observed_generation == 1
    assert [e.reason for e in world.events()] == ["Deploying", "Deployed"]


def test_steady_state_writes_nothing_and_checks_the_tag_once_per_resync(world: World) -> None:
    world.deploy("v1")
    world.reset_records()
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.registry.requests == []  # the tag was checked when the release became Ready

    world.clock.now += RESYNC
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert [(r.method, r.url.path) for r in world.registry.requests] == [("HEAD", "/v2/shop/web/manifests/v1")]
    assert world.cluster.calls == []
    assert world.events() == []


def test_upgrade_records_revision_2_and_leaves_revision_1_untouched(world: World) -> None:
    d1 = world.deploy("v1")
    revision_1 = world.raw_status()["history"][0]
    d2 = world.registry.push("v2", {"org.opencontainers.image.version": "v2"})  # no revision label this time

    world.update(version="v2")
    world.reconcile()
    status = world.status()
    assert (status.revision, status.digest) == (2, d2)
    assert [e.revision for e in status.history] == [2, 1]
    assert world.raw_status()["history"][1] == revision_1
    assert revision_1["digest"] == d1 and revision_1["outcome"] == "Succeeded"
    assert "gitCommit" not in world.raw_status()  # removed by an explicit null in the merge patch
    assert world.cluster.images()["web"] == pinned(d2)

    world.cluster.roll_out()
    world.reconcile()
    assert world.status().history[0].outcome == Outcome.SUCCEEDED
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_rollback_uses_the_recorded_digest_without_the_registry(world: World) -> None:
    d1 = world.deploy("v1")
    world.deploy("v2")
    world.registry.down = True
    world.reset_records()

    world.update(version="v1")
    assert world.reconcile() == Result(requeue_after=POLL)
    assert world.registry.requests == []
    status = world.status()
    head = status.history[0]
    assert (status.revision, status.version, status.digest, status.git_commit) == (3, "v1", d1, commit_of("v1"))
    assert (head.revision, head.source, head.restored_from, head.digest) == (3, Source.HISTORY, 1, d1)
    assert [e.revision for e in status.history] == [3, 2, 1]
    assert world.cluster.images()["web"] == pinned(d1)
    assert world.cluster.template_annotations()[ANNOTATION_REVISION] == "3"
    assert [e.reason for e in world.events()] == ["RollingBack"]

    world.cluster.roll_out()
    world.clock.now += RESYNC  # the tag check now fails against the down registry: it must not matter
    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_history_is_bounded_and_revisions_keep_growing(world: World) -> None:
    world.deploy("v1")
    world.update(historyLimit=2)
    for version in ("v2", "v3", "v1"):
        world.deploy(version)
    status = world.status()
    assert status.revision == 4
    assert [(e.revision, e.version) for e in status.history] == [(4, "v1"), (3, "v3")]


# --- stalled: never retried until the spec changes -----------------------------------------------------
@pytest.mark.parametrize("version", ["latest", "Latest"])
def test_latest_stalls_without_touching_anything(world: World, version: str) -> None:
    world.registry.release(version)
    before = copy.deepcopy(world.cluster.deployments)
    world.create(version)  # as if the CRD's validation were missing

    assert world.reconcile() == Result()
    assert_stalled(world, Reason.MUTABLE_REFERENCE)
    assert world.cluster.deployments == before
    assert world.registry.requests == []
    [event] = world.events()
    assert (event.kind, event.type, event.reason) == ("AppRelease", "Warning", Reason.MUTABLE_REFERENCE)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"version": "latest"}, Reason.MUTABLE_REFERENCE),
        ({"version": "v1", "provenance": "Required"}, Reason.PROVENANCE_MISMATCH),  # found out by asking the registry
    ],
)
def test_stalled_object_is_left_alone_until_its_generation_changes(
    world: World, spec: dict[str, Any], reason: str
) -> None:
    world.registry.push("v1")  # no labels
    world.create(**spec)
    world.reconcile()
    assert_stalled(world, reason)
    world.reset_records()

    assert world.reconcile() == Result()
    assert world.cluster.calls == []
    assert world.events() == []
    assert world.registry.requests == []

    world.update(version="v1", provenance="IfPresent")
    world.reconcile()
    assert world.condition(STALLED) == ("False", "NotStalled")  # CamelCase, never "False"
    assert world.status().revision == 1


def test_provenance_required_without_matching_label_stalls(world: World) -> None:
    world.registry.push("v2", {"org.opencontainers.image.version": "v1"})
    world.create("v2", provenance="Required")
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.PROVENANCE_MISMATCH)
    assert world.cluster.patched() == []
    assert world.status().revision == 0


@pytest.mark.parametrize(
    ("provenance", "labels", "deploys"),
    [
        ("Required", {}, False),
        ("IfPresent", {}, True),
        ("IfPresent", {"org.opencontainers.image.version": "v0.9"}, False),
        ("Disabled", {"org.opencontainers.image.version": "v0.9"}, True),
    ],
)
def test_provenance_modes(world: World, provenance: str, labels: dict[str, str], deploys: bool) -> None:
    world.registry.push("v1", labels)
    world.create("v1", provenance=provenance)
    world.reconcile()
    assert (world.cluster.patched() != []) == deploys
    if not deploys:
        assert_stalled(world, Reason.PROVENANCE_MISMATCH)


def test_digest_guard_mismatch_stalls(world: World) -> None:
    world.registry.release("v1")
    world.create("v1", digest="sha256:" + "0" * 64)
    assert world.reconcile() == Result()
    assert_stalled(world, Reason.DIGEST_MISMATCH)
    assert world.cluster.patched() == []


def test_a_digest_guard_is_checked_against_the_registry_not_a_cached_tag(world: World) -> None:
    # Another AppRelease resolved v1 a moment ago (the cache holds it, up to APPRELEASE_REGISTRY_CACHE_SECONDS);
    # the tag was then pushed again, and this AppRelease pins the new digest: that is no DigestMismatch.
    world.registry.release("v1")
    world.reconciler.registry.resolve(parse(f"{IMAGE}:v1"))
    again = world.registry.release("v1", rebuilt="yes")
    world.clock.now += 10
    world.create("v1", digest=again)
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(again)


def test_digest_guard_match_deploys(world: World) -> None:
    digest = world.registry.release("v1")
    world.create("v1", digest=digest)
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)


# --- waiting: retried with backoff ---------------------------------------------------------------------
def test_tag_not_found_is_retried_and_deployed_once_pushed(world: World) -> None:
    world.create("v9")
    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.TAG_NOT_FOUND)
    assert world.cluster.patched() == []
    assert [(e.type, e.reason) for e in world.events()] == [("Warning", Reason.TAG_NOT_FOUND)]

    world.reconcile()
    assert len(world.events(Reason.TAG_NOT_FOUND)) == 1  # not repeated while the reason stays the same

    digest = world.registry.release("v9")
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)


def test_registry_unavailable_is_retried(world: World) -> None:
    world.registry.down = True
    world.create("v1")
    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.REGISTRY_UNAVAILABLE)
    assert world.cluster.patched() == []


def test_missing_workload_is_retried(world: World) -> None:
    world.registry.release("v1")
    world.create("v1", workloads=[{"name": "web"}, {"name": "worker"}])
    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.WORKLOAD_NOT_FOUND)
    assert world.cluster.patched() == []


def test_missing_container_is_retried(world: World) -> None:
    world.registry.release("v1")
    world.create("v1", workloads=[{"name": "web", "containers": ["app"]}])
    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.CONTAINER_NOT_FOUND)


# --- credentials ---------------------------------------------------------------------------------------
def docker_config(password: str) -> bytes:
    return json.dumps({"auths": {HOST: {"auth": basic(USER, password)}}}).encode()


def assert_no_secret(world: World, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    texts = [caplog.text, *(r.getMessage() for r in caplog.records)]
    texts += [f"{e.reason} {e.message}" for e in world.cluster.events]
    texts += [json.dumps(world.cluster.appreleases[NAME]), json.dumps(world.cluster.deployments)]
    for secret in secrets:
        for encoded in (secret, basic(USER, secret)):
            assert not any(encoded in text for text in texts), f"{secret} leaked"


def test_wrong_pull_secret_is_unauthorized_and_never_leaks(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.registry.release("v1")
    world.registry.password = PASSWORD
    world.cluster.secrets["pull"] = docker_config(WRONG_PASSWORD)
    world.create("v1", imagePullSecrets=[{"name": "pull"}])

    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.UNAUTHORIZED)
    assert "credentials were supplied" in world.status().conditions[0].message
    assert world.cluster.patched() == []
    assert any(
        r.headers.get("Authorization") == f"Basic {basic(USER, WRONG_PASSWORD)}" for r in world.registry.requests
    )
    assert_no_secret(world, caplog, WRONG_PASSWORD, PASSWORD)


def test_malformed_pull_secret_is_skipped_without_quoting_it(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    digest = world.registry.release("v1")
    world.registry.password = PASSWORD
    broken = {"auths": {HOST: {"auth": f"{USER}:{WRONG_PASSWORD}", "password": WRONG_PASSWORD}}}  # auth not base64
    world.cluster.secrets["broken"] = json.dumps(broken).encode()
    plain = {"auths": {f"https://{HOST}/v2/": {"username": USER, "password": PASSWORD}}}
    world.cluster.secrets["pull"] = json.dumps(plain).encode()
    world.create("v1", imagePullSecrets=[{"name": "broken"}, {"name": "pull"}])

    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)
    assert any("broken" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert_no_secret(world, caplog, WRONG_PASSWORD, PASSWORD)


def test_pull_secret_of_the_service_account_is_used(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    digest = world.registry.release("v1")
    world.registry.password = PASSWORD
    world.cluster.secrets["pull"] = docker_config(PASSWORD)
    world.cluster.service_accounts["default"] = ["missing", "pull"]
    world.create("v1")

    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.cluster.images()["web"] == pinned(digest)
    assert_no_secret(world, caplog, PASSWORD)


def test_pull_secret_of_the_deployment_is_used(world: World) -> None:
    world.cluster.deployments["web"] = deployment("web", pull_secrets=["pull"])
    digest = world.registry.release("v1")
    world.registry.password = PASSWORD
    world.cluster.secrets["pull"] = docker_config(PASSWORD)
    world.create("v1")
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)


def keyed_config(**passwords: str) -> bytes:
    """A .dockerconfigjson whose keys (HOST, or HOST/<path>) each hold USER with a password."""
    keys = {("" if key == "host" else "/" + key.replace("_", "/")): password for key, password in passwords.items()}
    return json.dumps({"auths": {f"{HOST}{path}": {"auth": basic(USER, pw)} for path, pw in keys.items()}}).encode()


def authorizations(world: World) -> list[str | None]:
    return [r.headers.get("Authorization") for r in world.registry.requests]


def test_the_repository_path_key_wins_over_the_host_key_as_on_the_kubelet(world: World) -> None:
    digest = world.registry.release("v1")
    world.registry.password = PASSWORD
    # A wrong credential for the host and another team; the right one under the repository's own path.
    world.cluster.secrets["pull"] = keyed_config(host=WRONG_PASSWORD, shop_other=WRONG_PASSWORD, shop=PASSWORD)
    world.create("v1", imagePullSecrets=[{"name": "pull"}])
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)
    assert f"Basic {basic(USER, WRONG_PASSWORD)}" not in authorizations(world)


def test_a_refused_credential_is_followed_by_the_next_match_as_the_kubelet_tries_them(world: World) -> None:
    digest = world.registry.release("v1")
    world.registry.password = PASSWORD
    world.cluster.secrets["path"] = keyed_config(shop=WRONG_PASSWORD)
    world.cluster.secrets["host"] = keyed_config(host=PASSWORD)
    world.create("v1", imagePullSecrets=[{"name": "path"}, {"name": "host"}])
    world.reconcile()
    assert world.cluster.images()["web"] == pinned(digest)
    sent = [a for a in authorizations(world) if a]
    # The more specific key first, then the host key, which the read of the labels reuses.
    assert sent[0] == f"Basic {basic(USER, WRONG_PASSWORD)}"
    assert sent[-1] == f"Basic {basic(USER, PASSWORD)}"


def test_every_matching_credential_refused_is_unauthorized_saying_how_many(world: World) -> None:
    world.registry.release("v1")
    world.registry.password = PASSWORD
    world.cluster.secrets["pull"] = keyed_config(host=WRONG_PASSWORD, shop="another-wr0ng-one")
    world.create("v1", imagePullSecrets=[{"name": "pull"}])
    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.UNAUTHORIZED)
    assert "2 matching pull-secret credentials tried" in world.status().conditions[0].message
    assert world.cluster.patched() == []


# --- suspend, drift, crashes, moved tags ---------------------------------------------------------------
def test_suspend_observes_without_patching(world: World) -> None:
    world.deploy("v1")
    world.registry.release("v2")
    world.update(version="v2", suspend=True)
    world.reset_records()

    assert world.reconcile() == Result(requeue_after=RESYNC)
    assert world.cluster.patched() == []
    assert world.registry.requests == []
    assert world.status().revision == 1
    assert world.condition(READY) == ("True", Reason.SUSPENDED)  # v1 still runs as recorded

    world.update(suspend=False)
    world.reconcile()
    assert world.status().revision == 2
    assert world.cluster.patched() == ["deployment/web"]


def test_suspended_first_release_deploys_nothing(world: World) -> None:
    world.registry.release("v1")
    world.create("v1", suspend=True)
    world.reconcile()
    assert world.cluster.patched() == []
    assert world.condition(READY) == ("False", Reason.SUSPENDED)


def test_hand_edited_image_is_put_back_with_warnings(world: World) -> None:
    digest = world.deploy("v1")
    world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:hotfix"
    world.cluster.roll_out()
    world.reset_records()

    world.reconcile()
    assert world.cluster.images() == {"web": pinned(digest), "proxy": "envoy:1.30"}
    assert world.status().revision == 1
    assert len(world.status().history) == 1
    drift = world.events("DriftCorrected")
    assert sorted((e.kind, e.type) for e in drift) == [("AppRelease", "Warning"), ("Deployment", "Warning")]
    assert all("web" in e.message and pinned(digest) in e.message for e in drift)


def test_restart_after_a_crash_finishes_the_recorded_revision(world: World) -> None:
    d1 = world.deploy("v1")
    d2 = world.registry.release("v2")
    world.update(version="v2")
    world.cluster.crash_on_deployment_patch = True
    with pytest.raises(Crash):
        world.reconcile()
    assert world.status().revision == 2
    assert world.status().history[0].outcome == Outcome.IN_PROGRESS
    assert world.cluster.images()["web"] == pinned(d1)
    world.reset_records()

    world.reconcile()  # a new process, with the status as the only memory
    assert world.cluster.images()["web"] == pinned(d2)
    assert world.cluster.template_annotations()[ANNOTATION_REVISION] == "2"
    status = world.status()
    assert status.revision == 2
    assert [e.revision for e in status.history] == [2, 1]
    assert world.registry.requests == []  # the recorded digest is used, not re-resolved
    assert world.events() == []  # neither a second Deploying nor a false DriftCorrected


def test_moved_tag_is_reported_once_and_ignored(world: World) -> None:
    d1 = world.deploy("v1")
    assert world.events("TagMoved") == []
    moved = world.registry.release("v1", rebuilt="yes")
    assert moved != d1

    for _ in range(3):
        world.clock.now += RESYNC
        world.reconcile()
    [event] = world.events("TagMoved")
    assert (event.kind, event.type) == ("AppRelease", "Warning")
    assert moved in event.message and d1 in event.message
    assert world.status().digest == d1
    assert world.cluster.images()["web"] == pinned(d1)
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)


def test_a_deployment_labelled_for_another_apprelease_is_not_touched(world: World) -> None:
    first = world.deploy("v1")
    other = copy.deepcopy(world.cluster.appreleases[NAME])
    other["metadata"]["name"] = "intruder"
    other["spec"]["version"] = "v2"
    world.registry.release("v2")
    world.cluster.appreleases["intruder"] = other
    world.reset_records()

    result = world.reconciler.reconcile(NS, "intruder")

    assert result.retry
    intruder = AppReleaseStatus.model_validate(world.cluster.appreleases["intruder"]["status"])
    ready = next(c for c in intruder.conditions if c.type == READY)
    assert (ready.status, ready.reason) == ("False", Reason.WORKLOAD_NOT_OPTED_IN)
    assert f"{LABEL_RELEASE}=intruder" in ready.message and repr(NAME) in ready.message
    assert world.cluster.images()["web"] == pinned(first)
    assert world.cluster.patched() == []
    assert world.registry.requests == []  # refused before any registry request


def test_an_unlabelled_workload_is_not_patched_until_its_owner_opts_in(world: World) -> None:
    world.cluster.deployments["web"] = deployment("web", release=None)
    before = copy.deepcopy(world.cluster.deployments)
    digest = world.registry.release("v1")
    world.create("v1")

    assert world.reconcile() == Result(retry=True)
    assert_waiting(world, Reason.WORKLOAD_NOT_OPTED_IN)
    assert "kubectl label deployment web" in world.status().conditions[0].message
    assert world.cluster.deployments == before
    assert [(e.type, e.reason) for e in world.events()] == [("Warning", Reason.WORKLOAD_NOT_OPTED_IN)]

    world.cluster.deployments["web"]["metadata"]["labels"] = {LABEL_RELEASE: NAME}
    world.reconcile()
    assert world.cluster.images() == {"web": pinned(digest), "proxy": "envoy:1.30"}


def test_drift_is_not_corrected_once_the_label_is_removed(world: World) -> None:
    world.deploy("v1")
    world.cluster.deployments["web"]["metadata"]["labels"] = {}
    world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:hotfix"
    world.reset_records()

    assert world.reconcile().retry
    assert_waiting(world, Reason.WORKLOAD_NOT_OPTED_IN)
    assert world.cluster.images()["web"] == f"{IMAGE}:hotfix"
    assert world.events("DriftCorrected") == []


def test_while_the_next_version_is_not_pushed_the_recorded_one_stays_pinned(world: World) -> None:
    digest = world.deploy("v1")
    world.update(version="v2")  # not pushed yet
    world.cluster.deployments["web"]["spec"]["template"]["spec"]["containers"][0]["image"] = f"{IMAGE}:hotfix"
    world.reset_records()

    assert world.reconcile().retry
    assert_waiting(world, Reason.TAG_NOT_FOUND)
    assert world.cluster.images()["web"] == pinned(digest)
    assert world.events("DriftCorrected")
    assert world.status().revision == 1 and world.status().version == "v1"
