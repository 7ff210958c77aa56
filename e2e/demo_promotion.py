"""The last part of `make demo`: promote from staging to production on the real node, and show the notification.

staging releases v1.1.0 (bake 2 s); production names staging in `spec.promotion.from` with a soak of 5 s, so
it waits (`AwaitingPromotion`) until v1.1.0 has been Succeeded in staging for 5 s, then pins exactly the digest
staging ran. Production's `spec.notify` has a webhook whose URL is in a Secret; the receiver is this process,
plain HTTP on a free port of 127.0.0.1, which the operator is configured to allow (`receiver_env`) the same way
the e2e tests do. The receiver's messages are printed with their idempotency keys.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from e2e.images import APP_PORT
from e2e.narration import console, sh, step
from e2e.realnode import image_ids, on_real_node, wait_running
from e2e.releases import condition, deployment_manifest, get_release, release_manifest, wait_ready
from e2e.support import Testbed, wait_until

STAGING, PRODUCTION = "demo-staging", "demo-production"
APP, SOAK_SECONDS, HOOK_SECRET = "hello", 5, "release-hook"
APPRELEASE = str(Path(sys.executable).with_name("apprelease"))  # the CLI next to this interpreter
MAX_BODY = 64 * 1024  # a message is a few hundred bytes; more is not read


class Receiver:
    """A webhook receiver on 127.0.0.1 (a free port): every POST's headers (lower-case names) and body, kept."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or "0"), MAX_BODY)
                received.append(({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass  # the demo prints what arrived itself

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.hostport = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def operator_env(receiver: Receiver) -> dict[str, str]:
    """What the demo's operator needs on top of the test bed's settings: production may promote from staging,
    and notifications may go to the receiver over plain HTTP on loopback (both off by default)."""
    return {
        "APPRELEASE_PROMOTION_SOURCES": STAGING,
        "APPRELEASE_NOTIFY_INSECURE_HOSTS": receiver.hostport,
        "APPRELEASE_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8",
    }


def show_pods(testbed: Testbed, namespace: str, digest: str, replicas: int) -> None:
    """Wait until the app's pods run `digest`, then ask each one what it is (through the node's CNI bridge)."""
    for pod in wait_running(testbed, namespace, APP, digest, replicas=replicas):
        ip = pod["status"]["podIP"]
        answer = sh("curl", "-fsS", f"http://{ip}:{APP_PORT}/version").strip()
        runs = image_ids(pod)[0].rpartition("@")[2]
        same = "[green]same digest[/]" if runs == digest else "[red]DIFFERENT digest[/]"
        console.print(
            f"  pod {pod['metadata']['name']} on {pod['spec']['nodeName']}: {answer}\n    runs {runs} ({same})",
            highlight=False,
        )


def _fresh_namespace(kubectl: list[str], name: str) -> None:
    subprocess.run([*kubectl, "delete", "namespace", name, "--ignore-not-found", "--wait=true"], capture_output=True)
    sh(*kubectl, "create", "namespace", name)
    wait_until(
        lambda: subprocess.run([*kubectl, "get", "sa", "default", "-n", name], capture_output=True).returncode == 0,
        timeout=30,
        what=f"the default ServiceAccount of {name}",
    )


def _apply(kubectl: list[str], *manifests: dict[str, Any]) -> None:
    sh(*kubectl, "apply", "-f", "-", input=yaml.safe_dump_all(manifests))


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def run_promotion(testbed: Testbed, kubectl: list[str], image: str, receiver: Receiver) -> None:
    step(f"7. Promote to production what staging ran: v1.1.0, after a soak of {SOAK_SECONDS}s (real node)")
    for namespace in (STAGING, PRODUCTION):
        _fresh_namespace(kubectl, namespace)
        # One replica each: what runs before is the tag's v1.0.0, placed on the real node.
        workload = deployment_manifest(namespace, APP, {APP: f"{image}:v1.0.0"}, release=APP, replicas=1)
        _apply(kubectl, on_real_node(workload, APP))
    workloads = [{"kind": "Deployment", "name": APP}]
    _apply(kubectl, release_manifest(STAGING, APP, image, "v1.1.0", workloads))
    staging = wait_ready(testbed, STAGING, APP, "v1.1.0", timeout=120)
    upstream = staging["status"]["history"][0]
    console.print(
        f"  staging Succeeded: revision {upstream['revision']}, {upstream['digest']}, "
        f"succeededAt {upstream['succeededAt']}",
        highlight=False,
    )

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": HOOK_SECRET, "namespace": PRODUCTION},
        "stringData": {"url": f"http://{receiver.hostport}/hook"},
    }
    promotion = {"from": {"namespace": STAGING, "name": APP}, "soakSeconds": SOAK_SECONDS}
    notify = [{"type": "webhook", "secretRef": {"name": HOOK_SECRET}, "on": ["AwaitingPromotion", "Succeeded"]}]
    production = release_manifest(PRODUCTION, APP, image, "v1.1.0", workloads, promotion=promotion, notify=notify)
    console.print(yaml.safe_dump(production["spec"], sort_keys=False), highlight=False)
    _apply(kubectl, secret, production)
    released = _follow(testbed)

    head = released["status"]["history"][0]
    same = head["digest"] == upstream["digest"]
    verdict = "[green]exactly the digest staging ran[/]" if same else "[red]NOT the digest staging ran[/]"
    console.print(
        f"  production pinned {head['digest']} ({verdict}), promoted from {head['promotedFrom']}", highlight=False
    )
    soak_end = _time(upstream["succeededAt"]) + dt.timedelta(seconds=SOAK_SECONDS)
    console.print(
        f"  soak over at {soak_end:%H:%M:%S}; production deployed at {_time(head['deployedAt']):%H:%M:%S}",
        highlight=False,
    )
    if not same:
        raise SystemExit("production does not run the digest staging ran")
    show_pods(testbed, PRODUCTION, head["digest"], replicas=1)
    console.print(sh(APPRELEASE, "history", APP, "-n", PRODUCTION, "--kubeconfig", testbed.kubeconfig))

    step("8. The notifications production sent (a webhook receiver on 127.0.0.1, this process)")
    _show_messages(receiver)


def _follow(testbed: Testbed) -> dict[str, Any]:
    """Print each change of production's Ready condition until it is True at v1.1.0; AwaitingPromotion must
    show up on the way (production was applied inside the soak)."""
    started, last = time.monotonic(), None
    seen: set[object] = set()
    deadline = started + 120
    while time.monotonic() < deadline:
        release = get_release(testbed, PRODUCTION, APP)
        ready = condition(release, "Ready")
        now = (ready.get("status"), ready.get("reason"), ready.get("message"))
        if ready and now != last:
            console.print(f"  +{time.monotonic() - started:.1f}s Ready={now[0]} {now[1]}: {now[2]}", highlight=False)
            last, seen = now, seen | {now[1]}
        fresh = ready.get("observedGeneration") == release["metadata"]["generation"]
        if fresh and now[0] == "True" and release["status"].get("version") == "v1.1.0":
            if "AwaitingPromotion" not in seen:
                raise SystemExit("production was never seen AwaitingPromotion: the soak ended before it was applied")
            return release
        time.sleep(0.25)
    raise SystemExit("production did not become Ready within 120s")


def _show_messages(receiver: Receiver) -> None:
    def succeeded() -> bool:
        return any(json.loads(body).get("outcome") == "Succeeded" for _, body in receiver.received)

    wait_until(succeeded, timeout=30, what="the Succeeded notification")
    for headers, body in receiver.received:
        console.print(f"  Idempotency-Key: [bold]{headers.get('idempotency-key')}[/]", highlight=False)
        console.print(f"  {json.dumps(json.loads(body))}", highlight=False, soft_wrap=True)
