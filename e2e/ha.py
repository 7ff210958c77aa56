"""Two operator processes on the test bed with leader election on, each a distinct candidate (POD_NAME), both
watching one namespace and campaigning for one Lease there. Used by e2e/test_ha.py and e2e/bench_ha.py."""

from __future__ import annotations

import json
import signal
import urllib.request
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from e2e.support import ROOT, Operator, Testbed, wait_until

LOGS = ROOT / ".testbed" / "logs"  # next to the other operators' logs: a failed test shows their tails


class Replicas:
    """Candidates named `<prefix>-0`, `<prefix>-1`, ...; ports from `base_port` up (health) and +10 (metrics)."""

    def __init__(self, testbed: Testbed, namespace: str, *, prefix: str = "ha", base_port: int = 18180) -> None:
        self.testbed = testbed
        self.namespace = namespace
        self.lease = f"{prefix}-{namespace}"[:63]
        self.prefix = prefix
        self.base_port = base_port
        self.started: dict[str, Operator] = {}
        self._serial = 0

    def env(self, identity: str, slot: int) -> dict[str, str]:
        return {
            "POD_NAME": identity,
            "APPRELEASE_LEADER_ELECTION": "true",
            "APPRELEASE_LEADER_ELECTION_NAME": self.lease,
            "APPRELEASE_LEADER_ELECTION_NAMESPACE": self.namespace,
            "APPRELEASE_WATCH_NAMESPACES": self.namespace,
            "APPRELEASE_HEALTH_PORT": str(self.base_port + slot),
            "APPRELEASE_METRICS_PORT": str(self.base_port + 10 + slot),
        }

    def start(self, slot: int, env: dict[str, str] | None = None) -> str:
        """Start a new candidate in port slot `slot` (0..9), with more `env`; returns its identity."""
        identity = f"{self.prefix}-{self._serial}"
        self._serial += 1
        log = LOGS / f"operator-{identity}.log"
        log.unlink(missing_ok=True)
        operator = Operator(self.testbed, log, extra_env={**self.env(identity, slot), **(env or {})})
        operator.start()
        self.started[identity] = operator
        return identity

    def holder(self, lease: str | None = None) -> str:
        """Who holds `lease` (default: the pair's), "" when nobody or it does not exist."""
        name = lease or self.lease
        result = self.testbed.kubectl("get", "lease", name, "-n", self.namespace, "-o", "json", check=False)
        if result.returncode != 0:
            return ""
        read: dict[str, Any] = json.loads(result.stdout)
        return str(read.get("spec", {}).get("holderIdentity") or "")

    def wait_holder(self, identity: str, timeout: float = 60, lease: str | None = None) -> str:
        return wait_until(
            lambda: identity if self.holder(lease) == identity else None, timeout=timeout, what=f"{identity} leads"
        )

    def _families(self, slot: int) -> dict[str, Metric]:
        url = f"http://127.0.0.1:{self.base_port + 10 + slot}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {family.name: family for family in text_string_to_metric_families(text)}

    def served_releases(self, slot: int) -> set[str]:
        """Names of the AppReleases in the `apprelease_info` series that the replica in `slot` serves."""
        info = self._families(slot).get("apprelease_info")
        return {sample.labels["name"] for sample in info.samples} if info else set()

    def leader_gauge(self, slot: int) -> float:
        """`apprelease_leader` of the replica in `slot`."""
        return float(self._families(slot)["apprelease_leader"].samples[0].value)

    def signal(self, identity: str, sig: signal.Signals) -> None:
        process = self.started[identity].process
        assert process is not None
        process.send_signal(sig)

    def exit_code(self, identity: str) -> int | None:
        process = self.started[identity].process
        assert process is not None
        return process.poll()

    def log(self, identity: str) -> str:
        return self.started[identity].log_path.read_text(errors="replace")

    def stop_all(self) -> None:
        for operator in self.started.values():
            if operator.process is not None and operator.process.poll() is None:
                operator.process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            operator.stop()
        self.testbed.kubectl("delete", "lease", self.lease, "-n", self.namespace, "--ignore-not-found", check=False)
