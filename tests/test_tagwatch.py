"""Tag re-checks: one shared check per tag per interval, concurrent callers share it, each move reported once."""

from __future__ import annotations

import threading
import time

from apprelease.controller.tagwatch import TagWatch


def past_first_interval(watch: TagWatch, now: list[float]) -> None:
    """A process that has reconciled for one interval already (its first interval asks the registry nothing)."""
    assert watch.observe(("warm-up", ""), lambda: "sha256:never") is None
    now[0] += watch.interval


def test_a_new_process_takes_historys_word_for_its_first_interval() -> None:
    # A new leader's first pass over 10,000 AppReleases must not be 10,000 registry requests (issue 19).
    now = [100.0]
    watch = TagWatch(10.0, lambda: now[0])
    checks: list[str] = []

    def check() -> str:
        checks.append("asked")
        return "sha256:1"

    assert watch.observe(("repo", "v1"), check) is None
    now[0] += 9.9
    assert watch.observe(("repo", "v2"), check) is None
    assert checks == []
    now[0] += 0.1
    assert watch.observe(("repo", "v1"), check) == "sha256:1"
    assert checks == ["asked"]


def test_one_check_per_tag_per_interval_shared_by_every_caller() -> None:
    now = [100.0]
    watch = TagWatch(10.0, lambda: now[0])
    past_first_interval(watch, now)
    checks: list[str] = []

    def check(answer: str | None) -> str | None:
        checks.append(str(answer))
        return answer

    assert watch.observe(("repo", "v1"), lambda: check("sha256:1")) == "sha256:1"
    for _ in range(1000):  # every other AppRelease of the same tag in the same interval
        assert watch.observe(("repo", "v1"), lambda: check("sha256:never")) == "sha256:1"
    assert watch.observe(("repo", "v2"), lambda: check(None)) is None  # a failed check is kept too
    assert watch.observe(("repo", "v2"), lambda: check("sha256:never")) is None
    assert checks == ["sha256:1", "None"]
    now[0] += 10.1
    assert watch.observe(("repo", "v1"), lambda: check("sha256:moved")) == "sha256:moved"
    assert checks == ["sha256:1", "None", "sha256:moved"]


def test_concurrent_callers_wait_for_the_check_in_flight() -> None:
    now = [0.0]
    watch = TagWatch(60.0, lambda: now[0])
    past_first_interval(watch, now)
    calls: list[int] = []
    started = threading.Event()

    def slow_check() -> str:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return "sha256:1"

    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(watch.observe("t", slow_check))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert results == ["sha256:1"] * 8


def test_each_move_reported_once_per_key() -> None:
    watch = TagWatch(10.0)
    assert watch.first_report("a", "sha256:1") and not watch.first_report("a", "sha256:1")
    assert watch.first_report("a", "sha256:2") and watch.first_report("b", "sha256:1")


def test_memory_is_bounded_by_entries_not_by_the_life_of_the_process() -> None:
    now = [0.0]
    watch = TagWatch(10.0, lambda: now[0], max_tags=100, max_reports=100)
    past_first_interval(watch, now)
    for i in range(1000):
        watch.observe(("repo", f"v{i}"), lambda: "sha256:1")
        watch.first_report(f"release-{i}", "sha256:1")
        now[0] += 0.001
    assert len(watch._seen) == 100 and len(watch._reported) == 100
    now[0] += 10.0
    watch.observe(("repo", "new"), lambda: "sha256:2")  # expired checks go at the next write
    assert len(watch._seen) == 1
    assert not watch.first_report("release-999", "sha256:1")  # the newest reports are the ones kept
