"""kstatus as Flux, Helm 4 and kpt compute it (e2e/kstatus: both cli-utils implementations), and a way to
freeze the operator so that a state before its next step can be looked at without a race."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from e2e.support import ROOT, Operator, Testbed


def build_tool(script: Path) -> Path:
    """Run a cached build script that prints the binary's path (a cold build takes a while)."""
    result = subprocess.run([str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{script} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def kstatus_tool() -> Path:
    return build_tool(ROOT / "e2e" / "kstatus" / "build.sh")


@dataclass(frozen=True)
class Health:
    upstream: str  # sigs.k8s.io/cli-utils
    flux: str  # github.com/fluxcd/cli-utils (Flux, Helm 4)
    message: str

    @property
    def status(self) -> str:
        """The one answer, asserted to be the same from both implementations."""
        assert self.upstream == self.flux, self
        return self.upstream


def health(tool: Path, testbed: Testbed, namespace: str, name: str) -> Health:
    obj = testbed.kubectl("get", "appreleases.apprelease.dev", name, "-n", namespace, "-o", "json").stdout
    result = subprocess.run([str(tool)], input=obj, capture_output=True, text=True, check=True)
    answer = json.loads(result.stdout)
    return Health(answer["status"], answer["flux"]["status"], answer["message"])


def kubectl_wait_ready(testbed: Testbed, namespace: str, name: str, timeout: str) -> bool:
    result = testbed.kubectl(
        "wait", "--for=condition=Ready", f"appreleases.apprelease.dev/{name}", "-n", namespace, f"--timeout={timeout}",
        check=False,
    )  # fmt: skip
    return result.returncode == 0


@contextmanager
def frozen(operator: Operator) -> Iterator[None]:
    """SIGSTOP the operator: what the API server holds meanwhile is what a GitOps tool sees before it acts."""
    assert operator.process is not None
    operator.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        operator.process.send_signal(signal.SIGCONT)
