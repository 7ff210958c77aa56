"""Notifications on fakes for the cluster and registry, with real receivers on loopback (http.server).

Each test drives the real Reconciler with a Notifier whose Endpoint uses the registry client's
GuardedTransport; the receiver records every request it is sent.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from apprelease.controller.reconciler import Reconciler, Result
from apprelease.core.api import NotifyOutcome
from apprelease.core.conditions import READY, STALLED, Reason
from apprelease.notify.endpoint import Endpoint, EndpointRules, NotifyFailed
from apprelease.notify.notifier import NOTIFICATION_FAILED, Notifier
from tests.conftest import NAME, NS, POLL, RESYNC, Crash, World
from tests.test_release_safety import upgrade_that_crashes

UID = "uid-shop"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP receiver on loopback; answers the scripted statuses in turn, then 200."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def keys(self) -> list[str]:
        return [r.key for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            me = holder[0]
            me.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            status = me.script.pop(0) if me.script else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@dataclass
class Secrets:
    data: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.data.get(name)


def rules_for(receiver: Receiver) -> EndpointRules:
    return EndpointRules(
        insecure_hosts=frozenset({receiver.hostport}),
        allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        timeout_seconds=5.0,
    )


def operator(world: World, receiver: Receiver, secrets: Secrets) -> None:
    """(Re)start the operator: a new Reconciler and Notifier (nothing kept in memory from before)."""
    endpoint = Endpoint(rules_for(receiver), sleep=lambda _: None)
    world.reconciler = Reconciler(
        world.cluster,
        world.reconciler.registry,
        resync_seconds=RESYNC,
        rollout_poll_seconds=POLL,
        now=world.wall,
        monotonic=world.clock,
        notifier=Notifier(secrets, endpoint),
    )


def hooked(world: World, receiver: Receiver, kind: str = "webhook", on: list[str] | None = None) -> Secrets:
    secrets = Secrets({"hook": {"url": receiver.url.encode(), "token": b"s3cret"}})
    operator(world, receiver, secrets)
    world.registry.release("v1")
    world.create("v1", notify=[{"type": kind, "secretRef": {"name": "hook"}, "on": on or ["Succeeded"]}])
    return secrets


def test_one_message_per_revision_and_outcome_through_an_operator_restart(world: World, receiver: Receiver) -> None:
    secrets = hooked(world, receiver)
    world.deploy("v1")
    assert receiver.keys() == [f"{UID}/1/Succeeded"]
    assert world.status().history[0].notified == ["Succeeded"]
    document = receiver.received[0].json()
    assert (document["revision"], document["outcome"], document["version"]) == (1, "Succeeded", "v1")
    assert receiver.received[0].headers["x-apprelease-idempotency-key"] == f"{UID}/1/Succeeded"
    assert receiver.received[0].headers["authorization"] == "Bearer s3cret"

    # v2 starts rolling out; the operator restarts in the middle; the rollout completes.
    world.registry.release("v2")
    world.update(version="v2")
    world.reconcile()
    operator(world, receiver, secrets)
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    operator(world, receiver, secrets)
    world.reconcile()
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded", f"{UID}/2/Succeeded"]


def test_a_crash_between_send_and_record_gives_exactly_one_duplicate_with_the_same_key(
    world: World, receiver: Receiver
) -> None:
    secrets = hooked(world, receiver)
    world.reconcile()
    world.cluster.roll_out()
    patch = world.cluster.patch_apprelease_status
    writes: list[dict[str, Any]] = []

    def crash_on_record(namespace: str, name: str, status: dict[str, Any], resource_version: str = "") -> str:
        if any(h.get("notified") for h in status.get("history") or []):
            writes.append(status)
            raise Crash()
        return patch(namespace, name, status, resource_version)

    world.cluster.patch_apprelease_status = crash_on_record  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded"] and len(writes) == 1
    assert world.status().history[0].outcome.value == "Succeeded"  # the pass's own write went through
    assert not world.status().history[0].notified

    world.cluster.patch_apprelease_status = patch  # type: ignore[method-assign]
    operator(world, receiver, secrets)  # the restarted operator knows nothing of the first send
    world.reconcile()
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded"] * 2
    assert world.status().history[0].notified == ["Succeeded"]


def test_a_receiver_answering_500_then_200_gets_the_message_once_delivered(world: World, receiver: Receiver) -> None:
    receiver.script = [500]
    hooked(world, receiver)
    world.deploy("v1")
    assert receiver.keys() == [f"{UID}/1/Succeeded"] * 2  # the retry carries the same key
    assert world.status().history[0].notified == ["Succeeded"]
    assert NOTIFICATION_FAILED not in {c.type for c in world.status().conditions}


def test_a_failing_receiver_sets_notification_failed_and_never_touches_ready(world: World, receiver: Receiver) -> None:
    receiver.script = [503] * 3
    hooked(world, receiver)
    world.reconcile()
    world.cluster.roll_out()
    assert world.reconcile() == Result(retry=True)  # retried with backoff, not at the resync
    assert world.condition(READY) == ("True", Reason.SUCCEEDED)
    assert world.condition(NOTIFICATION_FAILED) == ("True", "ReceiverFailed")
    message = next(c.message for c in world.status().conditions if c.type == NOTIFICATION_FAILED)
    assert "HTTP 503" in message and "hook" not in message.split(":", 1)[1]  # the URL is not repeated
    assert not world.status().history[0].notified

    assert world.reconcile() == Result(requeue_after=RESYNC)  # the receiver is back
    assert NOTIFICATION_FAILED not in {c.type for c in world.status().conditions}
    assert world.status().history[0].notified == ["Succeeded"]
    assert len(receiver.received) == 4


def test_cloudevents_are_parsed_back_by_the_cloudevents_package(world: World, receiver: Receiver) -> None:
    hooked(world, receiver, "cloudevents")
    digest = world.deploy("v1")
    [message] = receiver.received
    event = from_http_event(HTTPMessage(headers=message.headers, body=message.body))
    assert event.get_id() == f"{UID}/1/Succeeded"
    assert event.get_type() == "dev.apprelease.revision.succeeded"
    assert event.get_source() == f"/apis/apprelease.dev/v1alpha1/namespaces/{NS}/appreleases/{NAME}"
    assert event.get_subject() == "1"
    data = event.get_data()
    assert isinstance(data, dict) and data["digest"] == digest and data["outcome"] == "Succeeded"


def test_slack_and_teams_get_the_payloads_their_webhooks_expect(world: World, receiver: Receiver) -> None:
    secrets = Secrets({"slack": {"url": receiver.url.encode()}, "teams": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    world.create(
        "v1",
        notify=[
            {"type": "slack", "secretRef": {"name": "slack"}, "on": ["Succeeded"]},
            {"type": "msteams", "secretRef": {"name": "teams"}, "on": ["Succeeded"]},
        ],
    )
    digest = world.deploy("v1")
    slack, teams = (r.json() for r in receiver.received)
    assert slack == {"text": f"{NS}/{NAME} Succeeded: revision 1: v1 ({digest}) succeeded"}
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert [b["text"] for b in attachment["content"]["body"]] == [
        f"{NS}/{NAME} Succeeded",
        f"revision 1: v1 ({digest}) succeeded",
    ]
    assert all("authorization" not in r.headers for r in receiver.received)


def test_a_failed_upgrade_tells_failed_and_rolled_back_once(world: World, receiver: Receiver) -> None:
    hooked(world, receiver, on=["Failed", "RolledBack"])
    world.deploy("v1")
    upgrade_that_crashes(world)
    world.reconcile()
    world.reconcile()
    assert world.condition(STALLED) == ("True", Reason.ROLLED_BACK)
    assert receiver.keys() == [f"{UID}/2/Failed", f"{UID}/3/RolledBack"]
    failed = receiver.received[0].json()
    assert "CrashLoopBackOff" in failed["message"]


def test_a_new_notify_entry_never_replays_old_history(world: World, receiver: Receiver) -> None:
    secrets = Secrets({"hook": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    world.deploy("v1")
    world.update(notify=[{"type": "webhook", "secretRef": {"name": "hook"}, "on": ["Succeeded"]}])
    world.reconcile()
    assert receiver.received == []
    assert world.status().notify_since == {"webhook/hook": 2}
    world.deploy("v2")
    assert receiver.keys() == [f"{UID}/2/Succeeded"]


def test_an_entry_added_during_a_rollout_tells_that_rollouts_outcome(world: World, receiver: Receiver) -> None:
    secrets = Secrets({"hook": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    world.registry.release("v1")
    world.create("v1")
    world.reconcile()
    world.update(notify=[{"type": "webhook", "secretRef": {"name": "hook"}, "on": ["Succeeded"]}])
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/Succeeded"]


# --- endpoints are tenant input ------------------------------------------------------------------------
class NoConnect(httpx.BaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise AssertionError("no connection may be attempted")


def endpoint(rules: EndpointRules, resolved: dict[str, str]) -> tuple[Endpoint, NoConnect]:
    transport = NoConnect()

    def resolver(host: str, port: int, timeout: float) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(resolved.get(host, host))]

    return Endpoint(rules, resolver=resolver, transport_for=lambda _: transport), transport


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data", "plain http"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://metadata.test/x", "link-local"),  # a name that resolves there
        ("https://internal.test/x", "private address"),
        ("https://10.1.2.3/x", "private address"),
        ("https://127.0.0.1:9/x", "loopback"),
        ("ftp://hooks.test/x", "scheme"),
    ],
)
def test_refused_endpoints_are_refused_before_any_connection(url: str, why: str) -> None:
    names = {"metadata.test": "169.254.169.254", "internal.test": "192.168.1.10", "hooks.test": "203.0.113.7"}
    sender, transport = endpoint(EndpointRules(), names)
    with pytest.raises(NotifyFailed, match=why):
        sender.send(url, {}, b"{}")
    assert transport.requests == []


def test_link_local_stays_refused_even_when_the_operator_allows_every_private_network() -> None:
    rules = EndpointRules(
        insecure_hosts=frozenset({"169.254.169.254"}),
        allowed_networks=(ipaddress.ip_network("0.0.0.0/0"),),
    )
    sender, transport = endpoint(rules, {})
    with pytest.raises(NotifyFailed, match="link-local"):
        sender.send("http://169.254.169.254/", {}, b"{}")
    assert transport.requests == []


def test_a_listed_private_network_may_be_targeted() -> None:
    rules = EndpointRules(allowed_networks=(ipaddress.ip_network("192.168.0.0/16"),))
    sender, _ = endpoint(rules, {"internal.test": "192.168.1.10"})
    assert sender.check("https://internal.test/x").host == "internal.test"


def test_redirects_are_not_followed_and_replies_are_bounded(receiver: Receiver) -> None:
    receiver.script = [302]
    sender = Endpoint(rules_for(receiver), sleep=lambda _: None)
    with pytest.raises(NotifyFailed, match="redirects are not followed"):
        sender.send(receiver.url, {}, b"{}")
    assert len(receiver.received) == 1


def test_outcome_names_match_the_crd_enum() -> None:
    from pathlib import Path

    import yaml

    crd = yaml.safe_load(Path(__file__).parents[1].joinpath("crds/apprelease.dev_appreleases.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    on = spec["properties"]["notify"]["items"]["properties"]["on"]["items"]["enum"]
    assert on == [o.value for o in NotifyOutcome]


@pytest.fixture
def hostile() -> Iterator[tuple[str, dict[str, Any]]]:
    """A receiver that answers with an endless body, or never answers (the path says which)."""
    seen: dict[str, Any] = {"written": 0, "broken": False, "release": threading.Event()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path == "/silent":
                seen["release"].wait(10)
                return
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(10_000):  # 640 MB if anyone read it all
                    self.wfile.write(b"x" * 65536)
                    seen["written"] += 65536
            except OSError:
                seen["broken"] = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    seen["release"].set()
    server.shutdown()
    server.server_close()


def test_an_endless_reply_is_read_only_to_its_bound(hostile: tuple[str, dict[str, Any]]) -> None:
    hostport, seen = hostile
    rules = EndpointRules(frozenset({hostport}), (ipaddress.ip_network("127.0.0.0/8"),), timeout_seconds=10)
    Endpoint(rules).send(f"http://{hostport}/big", {}, b"{}")
    for _ in range(200):  # the server notices the closed connection on one of its next writes
        if seen["broken"]:
            break
        threading.Event().wait(0.05)
    assert seen["broken"] and seen["written"] < 64 * 1024 * 1024


def test_a_receiver_that_never_answers_fails_at_the_one_deadline(hostile: tuple[str, dict[str, Any]]) -> None:
    hostport, _ = hostile
    rules = EndpointRules(frozenset({hostport}), (ipaddress.ip_network("127.0.0.0/8"),), timeout_seconds=0.5)
    with pytest.raises(NotifyFailed, match="did not answer within 0.5s"):
        Endpoint(rules).send(f"http://{hostport}/silent", {}, b"{}")


# --- promotion states, told before their revision exists -------------------------------------------------
def test_awaiting_promotion_and_then_success_are_each_told_once(world: World, receiver: Receiver) -> None:
    from tests.test_promotion import SOURCE, UP_DIGEST, entry, upstream

    secrets = Secrets({"hook": {"url": receiver.url.encode()}})
    operator(world, receiver, secrets)
    upstream(world, entry(4, "v2", "InProgress", "2024-05-01T11:00:00Z"))
    on = ["AwaitingPromotion", "Succeeded"]
    world.create("v2", promotion=SOURCE, notify=[{"type": "webhook", "secretRef": {"name": "hook"}, "on": on}])
    world.reconcile()
    world.reconcile()
    operator(world, receiver, secrets)  # a restart does not tell it again
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/AwaitingPromotion"]
    assert "awaits promotion" in receiver.received[0].json()["message"]
    told = world.status().notified_ahead
    assert told is not None and (told.revision, told.outcomes) == (1, ["AwaitingPromotion"])

    upstream(world, entry(4, "v2", "Succeeded", "2024-05-01T11:00:00Z"))
    world.reconcile()
    world.cluster.roll_out()
    world.reconcile()
    assert world.status().history[0].digest == UP_DIGEST
    assert receiver.keys() == [f"{UID}/1/AwaitingPromotion", f"{UID}/1/Succeeded"]


def test_a_revoked_promotion_is_told_once(world: World, receiver: Receiver) -> None:
    from tests.test_promotion import SOURCE, entry, upstream

    operator(world, receiver, Secrets({"hook": {"url": receiver.url.encode()}}))
    upstream(world, entry(4, "v2", "Failed", "2024-05-01T11:00:00Z"))
    on = ["PromotionRevoked"]
    world.create("v2", promotion=SOURCE, notify=[{"type": "webhook", "secretRef": {"name": "hook"}, "on": on}])
    world.reconcile()
    world.reconcile()
    assert receiver.keys() == [f"{UID}/1/PromotionRevoked"]
    assert "failed upstream" in receiver.received[0].json()["message"]
