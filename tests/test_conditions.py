"""set_condition: kstatus-style conditions with stable transition times."""

from __future__ import annotations

from apprelease.core.api import Condition
from apprelease.core.conditions import (
    FALSE,
    READY,
    RECONCILING,
    STALLED,
    TRUE,
    Problem,
    Reason,
    get_condition,
    set_condition,
)

T1 = "2024-01-01T00:00:00Z"
T2 = "2024-01-02T00:00:00Z"


def ready(
    conditions: list[Condition], status: str, reason: str = "R", *, generation: int = 1, now: str = T1
) -> list[Condition]:
    return set_condition(conditions, READY, status, reason, f"message {reason}", generation, now)


def test_new_condition_gets_now_and_generation() -> None:
    [c] = ready([], TRUE, "Succeeded", generation=3)
    assert c == Condition(
        type=READY,
        status=TRUE,
        reason="Succeeded",
        message="message Succeeded",
        observedGeneration=3,
        lastTransitionTime=T1,
    )


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    first = ready([], FALSE, "Progressing", generation=1, now=T1)
    [c] = ready(first, FALSE, "TagNotFound", generation=2, now=T2)
    assert c.last_transition_time == T1
    assert c.reason == "TagNotFound"
    assert c.message == "message TagNotFound"
    assert c.observed_generation == 2


def test_status_change_moves_transition_time() -> None:
    first = ready([], FALSE, now=T1)
    [c] = ready(first, TRUE, now=T2)
    assert c.last_transition_time == T2
    assert c.status == TRUE


def test_missing_transition_time_is_filled_in() -> None:
    previous = [Condition(type=READY, status=TRUE, reason="R")]
    [c] = ready(previous, TRUE, now=T2)
    assert c.last_transition_time == T2


def test_other_conditions_are_untouched_and_not_duplicated() -> None:
    conditions = set_condition([], STALLED, TRUE, "InvalidSpec", "bad", 1, T1)
    conditions = ready(conditions, FALSE, now=T2)
    conditions = ready(conditions, FALSE, now=T2)
    assert [c.type for c in conditions] == [READY, STALLED]
    stalled = get_condition(conditions, STALLED)
    assert stalled is not None and stalled.last_transition_time == T1 and stalled.message == "bad"


def test_order_is_ready_reconciling_stalled_then_others() -> None:
    conditions: list[Condition] = []
    for type_ in ("Custom", STALLED, RECONCILING, READY):
        conditions = set_condition(conditions, type_, TRUE, "R", "", 1, T1)
    assert [c.type for c in conditions] == [READY, RECONCILING, STALLED, "Custom"]


def test_input_list_is_not_mutated() -> None:
    original = ready([], FALSE, now=T1)
    ready(original, TRUE, now=T2)
    assert original[0].status == FALSE and original[0].last_transition_time == T1


def test_get_condition_missing_is_none() -> None:
    assert get_condition([], READY) is None


def test_problem_stalled_only_for_stalled_reasons() -> None:
    stalled = [Reason.INVALID_SPEC, Reason.MUTABLE_REFERENCE, Reason.PROVENANCE_MISMATCH, Reason.DIGEST_MISMATCH]
    retried = [
        Reason.REGISTRY_UNAVAILABLE,
        Reason.UNAUTHORIZED,
        Reason.TAG_NOT_FOUND,
        Reason.WORKLOAD_NOT_FOUND,
        Reason.CONTAINER_NOT_FOUND,
    ]
    assert all(Problem(r, "").stalled for r in stalled)
    assert not any(Problem(r, "").stalled for r in retried)
