"""The reconcile steps of the promotion and notify wings, on the controller's side (cluster reads, Report).

Kept out of reconciler.py so that each wing's wiring is one call there; the rules stay in the wings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from apprelease.controller.cluster import Cluster
from apprelease.controller.converge import Result
from apprelease.controller.registryfaults import registry_problem
from apprelease.controller.report import NORMAL, Report
from apprelease.controller.verification import Gate, recorded_provenance
from apprelease.core import decisions
from apprelease.core.api import AppRelease
from apprelease.core.conditions import EventReason, Problem, Reason
from apprelease.core.spec import ReleaseSpec
from apprelease.notify.notifier import Notifier, with_failure
from apprelease.promotion import eligibility
from apprelease.registry import Credential, RegistryError
from apprelease.trust import TrustError
from apprelease.trust.verify import Verified

__all__ = ["SOAK_MARGIN_SECONDS", "Verifier", "choose_target", "notify", "promote", "source_refused"]

# Added to the seconds a soak has left, so the look at its end is never early. No more is needed though `now` is
# truncated to whole seconds: succeededAt is too, so the soak ends on a whole second, and the requeue (timed from
# after the truncated `now`) fires at or after it, when `now` reads at least that second. (It used to be 1 s,
# which put every promotion 1 to 2 s after the soak's end; `make bench` measures it, e2e/bench_promotion.py.)
SOAK_MARGIN_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Verifier:
    """Verifies a promoted digest under this AppRelease's own spec.verify raised to the operator's floor (the
    upstream's evidence is not taken: its policy may trust other keys). Registry requests only when a policy is
    active, with the first pull credential of the workloads."""

    gate: Gate
    namespace: str
    spec: ReleaseSpec
    credentials: Callable[[], list[Credential]]

    def __call__(self, digest: str) -> Verified | Problem:
        try:
            policy = self.gate.policy(self.namespace, self.spec.verify)
            if not policy.active:
                return Verified(digest, None)
            credential = next(iter(self.credentials()), None)
            return self.gate.verify_new(self.namespace, self.spec, digest, credential)
        except RegistryError as err:
            return registry_problem(err)
        except TrustError as refused:  # the keys Secret or trusted root missing: the policy cannot be read
            return Problem(Reason(refused.reason), str(refused))


def choose_target(
    cluster: Cluster, report: Report, ar: AppRelease, spec: ReleaseSpec, sources: list[str]
) -> decisions.Target | Problem:
    """`decisions.choose_target`; but a promoted revision kept running is PromotionRevoked (Stalled) once its
    upstream revision has failed since. One read of the upstream AppRelease per pass, only for a promoted
    revision of an allowed source (a refused namespace is never read)."""
    status = report.status
    target = decisions.choose_target(spec, status)
    source = spec.promotion
    if not isinstance(target, decisions.KeepCurrent) or source is None:
        return target
    head = eligibility.promoted_head(status, source)
    if head is None or eligibility.source_problem(ar.namespace, source, sources) is not None:
        return target
    obj = cluster.get_apprelease(source.namespace, source.name)
    return eligibility.revoked(spec, head, AppRelease.from_k8s(obj).status if obj is not None else None) or target


def source_refused(ar: AppRelease, spec: ReleaseSpec, sources: list[str]) -> Problem | None:
    """PromotionSourceNotAllowed when spec.promotion names a namespace the operator does not promote from."""
    return eligibility.source_problem(ar.namespace, spec.promotion, sources) if spec.promotion else None


def promote(
    cluster: Cluster,
    report: Report,
    ar: AppRelease,
    spec: ReleaseSpec,
    sources: list[str],
    verify: Callable[[str], Verified | Problem],
) -> tuple[Problem | None, float | None]:
    """Record a revision pinning what the upstream AppRelease recorded Succeeded for spec.version (no registry
    request), or why not and, when known, in how many seconds to look again."""
    source = spec.promotion
    assert source is not None
    refused = eligibility.source_problem(ar.namespace, source, sources)
    if refused:
        return refused, None
    obj = cluster.get_apprelease(source.namespace, source.name)
    upstream = AppRelease.from_k8s(obj).status if obj is not None else None
    decided = eligibility.judge(spec, upstream, report.now)
    if isinstance(decided, eligibility.Waiting):
        return decided.problem, None if decided.seconds_left is None else decided.seconds_left + SOAK_MARGIN_SECONDS
    if isinstance(decided, Problem):
        return decided, None
    verified = verify(decided.entry.digest)
    if isinstance(verified, Problem):
        return verified, None
    attested = recorded_provenance(verified)
    report.update(lambda s: eligibility.record(s, spec, decided, report.now, verified.evidence, attested))
    report.event(
        NORMAL,
        EventReason.PROMOTING,
        f"revision {report.status.revision}: {spec.version} promoted from {decided.promoted_from} "
        f"({decided.entry.digest})",
    )
    return None, None


def notify(notifier: Notifier, ar: AppRelease, report: Report, result: Result, poll_seconds: float) -> Result:
    """After the pass: tell spec.notify what its status now records, then record that it was told.
    Never changes Ready; a receiver that fails is retried with this key's backoff."""
    step = notifier.run(ar, report.status)
    report.update(lambda _: with_failure(step.status, step.failure, ar.generation, report.now))
    report.write()
    if step.failure is None or result.retry:
        return result
    if result.requeue_after is not None and result.requeue_after <= poll_seconds:
        return result  # checked again soon anyway
    return dataclasses.replace(result, retry=True, requeue_after=None)
