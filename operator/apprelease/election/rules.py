"""The rules of Lease leader election, as pure functions over a Lease record and two clocks.

They follow client-go's `tools/leaderelection` (what controller-runtime and Flux controllers use):
- A candidate judges another holder's lease by its *own* clock: the lease counts as expired `duration` seconds
  after the candidate last saw the record change, never by comparing `renewTime` with its wall clock, so clock
  skew between nodes cannot hand the lease to two replicas.
- A holder that has not renewed within `renew_deadline` (< `duration`) stops acting, so it has stopped before
  any other candidate may take the lease: the other waits `duration` from an observation made after that renew.
- A released lease (empty holder, as client-go's `ReleaseOnCancel` writes it) may be taken at once.
Times: `now`/`observed_at`/`renewed_at` are monotonic seconds (time.monotonic); `wall` is an aware UTC datetime
written into the Lease for humans and other tools.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

JITTER = 1.2  # client-go's JitterFactor: the renew deadline must leave room for a jittered retry


@dataclass(frozen=True)
class Timing:
    """Seconds. Defaults as the issue asks (client-go's are 15/10/2): failover under 15 s."""

    lease_duration: float = 8.0
    renew_deadline: float = 6.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        problems = check_timing(self.lease_duration, self.renew_deadline, self.retry_period)
        if problems:
            raise ValueError("; ".join(problems))


def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> list[str]:
    """client-go's NewLeaderElector checks (seconds): duration > renew deadline > JITTER * retry period > 0.
    Returns what is wrong, empty when the timing is sound."""
    problems = []
    if retry_period <= 0:
        problems.append(f"retry period must be positive, got {retry_period}")
    if lease_duration <= renew_deadline:
        problems.append(
            f"lease duration ({lease_duration}s) must be greater than the renew deadline ({renew_deadline}s)"
        )
    if renew_deadline <= JITTER * retry_period:
        problems.append(
            f"renew deadline ({renew_deadline}s) must be greater than {JITTER} x the retry period ({retry_period}s)"
        )
    return problems


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's spec (coordination.k8s.io/v1 LeaseSpec)."""

    holder: str = ""
    duration_seconds: int = 0
    acquired: dt.datetime | None = None
    renewed: dt.datetime | None = None
    transitions: int = 0


def held_by_other(record: LeaseRecord | None, me: str, observed_at: float, now: float) -> bool:
    """True when someone else holds an unexpired lease, judged by when *we* last saw the record change."""
    if record is None or not record.holder or record.holder == me:
        return False
    return observed_at + max(record.duration_seconds, 0) > now


def claim(record: LeaseRecord | None, me: str, timing: Timing, wall: dt.datetime) -> LeaseRecord:
    """The record to write to take or renew the lease: acquire time and transitions change only on a change
    of holder (client-go's tryAcquireOrRenew)."""
    duration = int(round(timing.lease_duration))
    if record is not None and record.holder == me:
        return LeaseRecord(me, duration, record.acquired or wall, wall, record.transitions)
    transitions = record.transitions + 1 if record is not None else 0
    return LeaseRecord(me, duration, wall, wall, transitions)


def release(record: LeaseRecord, wall: dt.datetime) -> LeaseRecord:
    """What a holder writes when it shuts down: no holder and a 1 s duration (client-go's ReleaseOnCancel), so
    a candidate takes the lease on its next try instead of waiting out the lease."""
    return LeaseRecord("", 1, record.acquired, wall, record.transitions)


def must_stop(renewed_at: float | None, now: float, timing: Timing) -> bool:
    """A leader whose last successful renew started more than `renew_deadline` ago must stop acting."""
    return renewed_at is None or now - renewed_at >= timing.renew_deadline


def leads(renewed_at: float | None, now: float, timing: Timing) -> bool:
    """Whether a replica may act now: it renewed (the request *started*) within the renew deadline. Judged at
    each use from the clock, so a process stopped for a while (SIGSTOP, a long GC) knows at once on waking."""
    return not must_stop(renewed_at, now, timing)


def wire_time(wall: dt.datetime) -> dt.datetime:
    """A MicroTime the API server parses: it wants six fraction digits, and `datetime.isoformat` (what the
    client sends) leaves the fraction out when it is zero."""
    wall = wall.astimezone(dt.UTC)
    return wall if wall.microsecond else wall.replace(microsecond=1)
