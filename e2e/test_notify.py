"""Notifications from the operator as a real process, to receivers this test runs on loopback.

One message per (revision, outcome) through an operator killed in the middle of a rollout (SIGKILL, no
shutdown), recorded in status; CloudEvents parsed back with the cloudevents package.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from e2e.images import Pushed
from e2e.releases import apply, deployment_manifest, get_release, patch_release, release_manifest, wait_ready
from e2e.support import ROOT, Operator, Testbed, wait_until

Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _secret(namespace: str, name: str, url: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }


def _current(testbed: Testbed, namespace: str) -> dict[str, object]:
    history = get_release(testbed, namespace, "web").get("status", {}).get("history") or [{}]
    entry: dict[str, object] = history[0]
    return entry


def test_one_message_per_revision_and_outcome_through_an_operator_kill(
    testbed: Testbed, operator: Operator, namespace: str, web: dict[str, Pushed], receiver: tuple[str, Received]
) -> None:
    hostport, received = receiver
    operator.stop()
    env = {
        "APPRELEASE_WATCH_NAMESPACES": namespace,
        "APPRELEASE_NOTIFY_INSECURE_HOSTS": hostport,
        "APPRELEASE_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    log = ROOT / ".testbed" / "logs" / "operator-notify.log"
    notifying = Operator(testbed, log, extra_env=env)
    notifying.start()
    try:
        repository = web["v1.0.0"].repository
        apply(testbed, _secret(namespace, "hook", f"http://{hostport}/hook"))
        apply(testbed, _secret(namespace, "events", f"http://{hostport}/events"))
        # minReadySeconds keeps each rollout in progress long enough to kill the operator in the middle of one.
        manifest = deployment_manifest(
            namespace, "web", {"web": f"{repository}:v0"}, release="web", min_ready_seconds=4
        )
        apply(testbed, manifest)
        notify = [
            {"type": "webhook", "secretRef": {"name": "hook"}, "on": ["Succeeded", "Failed"]},
            {"type": "cloudevents", "secretRef": {"name": "events"}, "on": ["Succeeded"]},
        ]
        workloads = [{"kind": "Deployment", "name": "web"}]
        apply(testbed, release_manifest(namespace, "web", repository, "v1.0.0", workloads, notify=notify))
        release = wait_ready(testbed, namespace, "web", "v1.0.0")
        uid = release["metadata"]["uid"]
        wait_until(lambda: _current(testbed, namespace).get("notified"), timeout=30, what="revision 1 notified")

        patch_release(testbed, namespace, "web", {"version": "v1.1.0"})
        wait_until(
            lambda: (
                _current(testbed, namespace).get("revision") == 2
                and _current(testbed, namespace).get("outcome") == "InProgress"
            ),
            timeout=30,
            what="revision 2 rolling out",
        )
        notifying.kill()
        notifying.start()
        wait_ready(testbed, namespace, "web", "v1.1.0")
        wait_until(lambda: _current(testbed, namespace).get("notified"), timeout=30, what="revision 2 notified")
    finally:
        notifying.stop()
        operator.start()

    hooks = [(h, b) for h, b in received if json.loads(b).get("apiVersion")]
    events = [(h, b) for h, b in received if h.get("content-type") == "application/cloudevents+json"]
    expected = [f"{uid}/1/Succeeded", f"{uid}/2/Succeeded"]
    assert [h["idempotency-key"] for h, _ in hooks] == expected
    assert [json.loads(b)["version"] for _, b in hooks] == ["v1.0.0", "v1.1.0"]
    parsed = [from_http_event(HTTPMessage(headers=h, body=b)) for h, b in events]
    assert [e.get_id() for e in parsed] == expected
    assert {e.get_type() for e in parsed} == {"dev.apprelease.revision.succeeded"}
    assert [h["notified"] for h in get_release(testbed, namespace, "web")["status"]["history"]] == [
        ["Succeeded"],
        ["Succeeded"],
    ]
