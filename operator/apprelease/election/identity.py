"""Who a candidate is: the pod's name (the chart passes POD_NAME through the downward API), else host name
and process id, so that two processes on one machine are two candidates (client-go's examples use the host
name plus a UUID; the pid is enough on one host and says which process it is)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def candidate_identity(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    pod = env.get("POD_NAME", "").strip()
    return pod or f"{socket.gethostname()}_{os.getpid()}"
