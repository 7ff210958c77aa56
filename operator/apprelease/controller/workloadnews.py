"""Whether a workload's watch event tells a pass anything new: one small fingerprint per watched workload.

A Deployment's controller writes its status several times per rollout, and most writes change nothing a pass
reads: with 0 replicas the last one only turns the Progressing condition's reason into NewReplicaSetAvailable.
Each such event woke its AppRelease for a pass that read the AppRelease and the workload and wrote nothing.
Creating 10,000 took 3.9 passes per AppRelease, three of which write; with this filter, 3.6 (issue 19, `make
bench`'s API request counts).

The fingerprint covers everything a pass reads from the workload object itself (see `fingerprint`); what it
reads elsewhere (pods) it re-reads on its own poll (the operator's APPRELEASE_ROLLOUT_POLL_SECONDS), never on a
workload event. An event whose fingerprint equals the previous event's is dropped: the previous one woke a pass
that started after it, and that pass saw this state or a newer one (the work queue re-runs a key woken while in
process). The idea is controller-runtime's `predicate.GenerationChangedPredicate` and
`AnnotationChangedPredicate` (and `LabelChangedPredicate`), widened to the status a pass judges.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable
from typing import Generic, TypeVar

from apprelease.core.fields import Fields
from apprelease.core.workloads import Rollout, Workload

R = TypeVar("R", bound=Hashable)  # a workload's key: (namespace, kind, name)

DIGEST_BYTES = 16  # a collision would only delay a pass to the next poll or resync


def fingerprint(workload: Workload) -> bytes:
    """A 16-byte digest of what a pass reads from a workload object: its uid and generation (every spec field:
    images, template annotations, pod spec, strategy, paused), its labels and annotations (the opt-in and uid
    binding, which change no generation), the rollout's judgement (`Workload.rollout`: its state, and while it
    is not complete its counts, as the status message shows them, and a ProgressDeadlineExceeded failure) and a
    StatefulSet's update and current revision (the forced rollback after an automatic one). A complete
    rollout's detail is left out: no pass reports it, and a CronJob's names its last run."""
    meta, status = workload.meta, Fields(workload.obj).sub("status")
    rollout = workload.rollout()
    read = [
        meta.text("uid"),
        meta.num("generation"),
        meta.strings("labels"),
        meta.strings("annotations"),
        rollout.state.value,
        "" if rollout.state == Rollout.COMPLETE else rollout.detail,
        status.text("updateRevision"),
        status.text("currentRevision"),
    ]
    encoded = json.dumps(read, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(encoded, digest_size=DIGEST_BYTES).digest()


class WorkloadNews(Generic[R]):
    """The last fingerprint seen per workload that an AppRelease lists.

    Memory: one key and 16 bytes per listed workload (about 0.3 KiB; 3 MiB at 10,000): an entry goes when its
    workload is deleted, or when no AppRelease lists it (the runtime's `ReverseIndex` calls `forget`). Not
    thread-safe: the event loop's only (kopf handlers)."""

    def __init__(self) -> None:
        self._seen: dict[R, bytes] = {}

    def changed(self, ref: R, workload: Workload) -> bool:
        """True when this event may tell a pass something new (and remember it)."""
        new = fingerprint(workload)
        if self._seen.get(ref) == new:
            return False
        self._seen[ref] = new
        return True

    def forget(self, ref: R) -> None:
        """Gone, left the watch, or no AppRelease lists it: its next event is news again."""
        self._seen.pop(ref, None)

    def __len__(self) -> int:
        return len(self._seen)
