"""What a phase of `make bench` cost the control plane, read before and after it (e2e/bench_scale.py): the
API server's own count of the requests it served (`apiserver_request_total`), by verb and resource, and the
CPU time of the control plane's processes (API server, etcd, controller-manager)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from e2e.fleet import cpu_seconds

_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def served(kubectl: list[str]) -> Counter[str]:
    """Requests served so far, keyed "VERB resource[/subresource]" (WATCH and its LIST included)."""
    page = subprocess.run([*kubectl, "get", "--raw", "/metrics"], capture_output=True, text=True, check=True).stdout
    counts: Counter[str] = Counter()
    for line in page.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[f"{labels.get('verb', '?')} {resource}"] += int(float(match.group(2)))
    return counts


def since(kubectl: list[str], before: Counter[str]) -> Counter[str]:
    """What was served since `before` (a `served` reading), without the zero rows."""
    after = served(kubectl)
    after.subtract(before)
    return +after


CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller-manager")


def control_plane_cpu() -> float:
    """CPU seconds used so far by the test bed's control-plane processes, on this machine (/proc)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() in CONTROL_PLANE:
                total += cpu_seconds(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return total
