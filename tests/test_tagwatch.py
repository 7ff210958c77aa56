"""Tag re-checks are spaced by the interval and each move is reported once."""

from __future__ import annotations

from apprelease.tagwatch import TagWatch


def test_due_once_per_interval_and_each_move_reported_once() -> None:
    now = [100.0]
    watch = TagWatch(10.0, lambda: now[0])
    assert watch.due("a") and not watch.due("a") and watch.due("b")
    now[0] += 9.9
    assert not watch.due("a")
    now[0] += 0.2
    assert watch.due("a")
    assert watch.first_report("a", "sha256:1") and not watch.first_report("a", "sha256:1")
    assert watch.first_report("a", "sha256:2") and watch.first_report("b", "sha256:1")
