"""What a reconcile pass tells the world: the status it builds, its conditions, its Events, and the one write.

The reconcile steps decide; this module reports. Status is changed in one style only: a pure function returns
the next status and `Report.status` is replaced by it (conditions included), so a pass can be read as a
sequence of values, and nothing reaches the API server until `write`.

Every outward effect of a pass goes through here, in one order: the status first, then the Events that tell
about it. `event` only queues; `write` patches the status and then posts what is queued, and `finish` posts
what is left at the end of a pass. A reader who sees an Event therefore finds its status already written, and
when the status write fails no Event claims what was not recorded (the retried pass reports it again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from apprelease.controller.cluster import Cluster
from apprelease.core import conditions as cond
from apprelease.core import limits
from apprelease.core.api import AppRelease, AppReleaseStatus, Condition
from apprelease.core.conditions import Problem, Reason, ReasonClass

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class _Event:
    type: str
    reason: str
    message: str
    about: dict[str, str] | None


class Report:
    def __init__(self, cluster: Cluster, ar: AppRelease, now: str) -> None:
        self._cluster = cluster
        self._ar = ar
        self.now = now
        self._written = ar.status.to_k8s()
        self._resource_version = ar.resource_version  # every write is conditional on it (fencing)
        self.status = ar.status.model_copy(deep=True)
        self._pending: list[_Event] = []

    def update(self, change: Callable[[AppReleaseStatus], AppReleaseStatus]) -> None:
        self.status = change(self.status)

    # --- conditions: each returns True when it changes what a reader sees (a reason for an Event) --------
    def stalled(self, reason: Reason, message: str, *, reconciling: bool = False) -> bool:
        previous = cond.get_condition(self.status.conditions, cond.STALLED)
        self._set(cond.STALLED, cond.TRUE, reason, message)
        self._set(cond.READY, cond.FALSE, reason, message)
        self._set(cond.RECONCILING, cond.TRUE if reconciling else cond.FALSE, reason, message)
        return previous is None or previous.status != cond.TRUE or previous.message != message

    def problem(self, problem: Problem) -> bool:
        """Stalled or waiting, as the reason's class says; True when a reader sees a change."""
        if problem.reason.reason_class == ReasonClass.RETRIED:
            return self.waiting(problem.reason, problem.message)
        return self.stalled(problem.reason, problem.message)

    def waiting(self, reason: Reason, message: str) -> bool:
        """Ready False for trouble the world may fix; retried."""
        previous = cond.get_condition(self.status.conditions, cond.READY)
        self._set(cond.STALLED, cond.FALSE, cond.NOT_STALLED, "")
        self._set(cond.READY, cond.FALSE, reason, message)
        self._set(cond.RECONCILING, cond.TRUE, reason, message)
        return previous is None or previous.reason != reason

    def progressing(self, message: str) -> None:
        self.waiting(Reason.PROGRESSING, message)

    def ready(self, status: str, reason: Reason, message: str) -> bool:
        """The outcome of a pass that is not waiting on anything: Ready True or False, not reconciling."""
        previous = cond.get_condition(self.status.conditions, cond.READY)
        self._set(cond.STALLED, cond.FALSE, cond.NOT_STALLED, "")
        self._set(cond.READY, status, reason, message)
        self._set(cond.RECONCILING, cond.FALSE, reason, message)
        return previous is None or previous.status != status or previous.reason != reason

    def says_progressing(self) -> bool:
        """Ready is False with reason Progressing for the current generation (what `progressing` sets)."""
        ready = cond.get_condition(self.status.conditions, cond.READY)
        return (
            ready is not None
            and ready.status == cond.FALSE
            and ready.reason == Reason.PROGRESSING
            and ready.observed_generation == self._ar.generation
        )

    def is_stalled(self) -> Condition | None:
        """The Stalled condition when it is True for the current generation."""
        stalled = cond.get_condition(self.status.conditions, cond.STALLED)
        if stalled and stalled.status == cond.TRUE and stalled.observed_generation == self._ar.generation:
            return stalled
        return None

    # --- events ----------------------------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str, about: dict[str, str] | None = None) -> None:
        """Queue an Event on the AppRelease, and also on a workload when `about` names one; posted right after
        the next status write (or by `finish`). Queue it before the write that records what it tells, so it goes
        out with that write and not after later steps (which a crash may cut short)."""
        self._pending.append(_Event(type_, str(reason), limits.message(message), about))

    # --- the write -------------------------------------------------------------------------------------
    def write(self) -> None:
        """Patch the status when it changed, then post the Events queued so far."""
        self.status = self.status.model_copy(update={"observed_generation": self._ar.generation})
        rendered = self.status.to_k8s()
        if rendered != self._written:
            patch = _with_nulls(rendered, self._written)
            # Conditional on the version this pass decided from, then on our own last write: a replica that
            # lost the lease, or a pass overtaken by another writer, gets fencing.Conflict (and posts no
            # Events) instead of overwriting.
            self._resource_version = self._cluster.patch_apprelease_status(
                self._ar.namespace, self._ar.name, patch, self._resource_version
            )
            self._written = rendered
        self._post_pending()

    def finish(self) -> None:
        """The end of a pass: post Events that no status write followed (they report nothing new in status)."""
        self._post_pending()

    def _post_pending(self) -> None:
        pending, self._pending = self._pending, []
        for event in pending:
            (log.warning if event.type == WARNING else log.info)(
                "%s/%s %s: %s", self._ar.namespace, self._ar.name, event.reason, event.message
            )
            self._cluster.post_event(self._ar.object_reference(), event.type, event.reason, event.message)
            if event.about is not None:
                self._cluster.post_event(event.about, event.type, event.reason, event.message)

    def _set(self, type_: str, status: str, reason: str, message: str) -> None:
        conditions = cond.set_condition(
            self.status.conditions, type_, status, str(reason), message, self._ar.generation, self.now
        )
        self.status = self.status.model_copy(update={"conditions": conditions})


def _with_nulls(new: dict[str, object], old: dict[str, object]) -> dict[str, object]:
    """A merge patch removes a field only when it says null; fields we dropped must say so."""
    patch = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
