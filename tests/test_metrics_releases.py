"""Per-AppRelease series as compact records (issue 19): the page is byte for byte prometheus_client's, and a
record costs a small fraction of prometheus_client's labelled children."""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from apprelease.controller.metrics import Metrics
from apprelease.controller.metrics_releases import (
    CONDITION,
    CONDITION_STATUSES,
    INFO,
    REVISIONS,
    ROLLOUT_BUCKETS,
    ROLLOUT_DURATION,
    Release,
    render,
)

D1 = "sha256:" + "1" * 64
HOSTILE = ['v1"} evil 1\n# TYPE x gauge', "back\\slash", "ünïcödé", "", "v2"]  # label values from status


def test_the_page_is_byte_for_byte_what_prometheus_client_writes() -> None:
    rng = random.Random(19)
    releases: list[tuple[tuple[str, str], Release]] = []
    registry = CollectorRegistry()
    info = Gauge(INFO.name, INFO.help, INFO.labels, registry=registry)
    condition = Gauge(CONDITION.name, CONDITION.help, CONDITION.labels, registry=registry)
    revisions = Counter(REVISIONS.name, REVISIONS.help, REVISIONS.labels, registry=registry)
    durations = Histogram(
        ROLLOUT_DURATION.name, ROLLOUT_DURATION.help, ROLLOUT_DURATION.labels, buckets=ROLLOUT_BUCKETS,
        registry=registry,
    )  # fmt: skip
    for i in range(60):
        key = (f"ns-{i % 4}", f"app-{i}")
        release = Release()
        if i % 5:
            release.info = (rng.choice(HOSTILE), D1, str(i))
            info.labels(*key, *release.info).set(1)
        release.conditions = tuple((t, rng.choice([*CONDITION_STATUSES, ""])) for t in ("Ready", "Stalled")[: i % 3])
        for type_, current in release.conditions:
            for status in CONDITION_STATUSES:
                condition.labels(*key, type_, status).set(1 if current == status else 0)
        for _ in range(i % 4):
            source, cause = rng.choice([("Registry", "Spec"), ("History", "AutoRollback"), ("other", "other")])
            release.count_revision(source, cause)
            revisions.labels(*key, source, cause).inc()
        for _ in range(i % 6):
            outcome = rng.choice(["Succeeded", "Failed"])
            # bounds themselves, just past them, zero and beyond the last bucket
            seconds = rng.choice([0.0, 1.0, 1.000001, 59.5, 60.0, 7200.0, 7200.5, 86400.0, rng.uniform(0, 9000)])
            release.observe_duration(outcome, seconds)
            durations.labels(*key, outcome).observe(seconds)
        releases.append((key, release))
    assert render(releases) == generate_latest(registry)


def test_a_page_with_no_apprelease_still_names_every_family() -> None:
    page = render([]).decode()
    for family in (INFO, CONDITION, REVISIONS, ROLLOUT_DURATION):
        assert f"# TYPE {family.name} {family.type}\n" in page


def test_a_record_costs_a_tenth_of_prometheus_clients_children() -> None:
    history = [
        {"revision": 1, "version": "v1", "digest": D1, "outcome": "InProgress", "deployedAt": "2026-11-30T10:00:00Z"}
    ]
    done = [history[0] | {"outcome": "Succeeded"}]
    conditions = [{"type": t, "status": "True"} for t in ("Ready", "Reconciling", "Stalled")]
    metrics = Metrics(max_releases=2000)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(2000):
            status = {"version": "v1", "digest": D1, "revision": 1, "conditions": conditions}
            metrics.observe_status("shop", f"app-{i}", status | {"history": history})
            metrics.observe_status("shop", f"app-{i}", status | {"history": done})
            metrics.observe_status("shop", f"app-{i}", status | {"history": done})
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # prometheus_client's labelled children held about 13 KiB per AppRelease for the same series
    assert held / 2000 < 1536, held / 2000
    assert metrics.render().count(b'apprelease_rollout_duration_seconds_count{name="app-1999"') == 1


def test_a_scrape_while_the_watch_updates_records_reads_each_record_whole() -> None:
    metrics = Metrics()
    stop = threading.Event()
    errors: list[BaseException] = []

    def watch() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            metrics.rollout_finished("shop", f"app-{n % 50}", "Succeeded", n % 100)
            metrics.revision("shop", f"app-{n % 50}", "Registry", "Spec")
            if n % 7 == 0:
                metrics.forget("shop", f"app-{n % 50}")

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(50):
            page = metrics.render().decode()
            for line in page.splitlines():
                if line.startswith("apprelease_rollout_duration_seconds_bucket") and 'le="+Inf"' in line:
                    name = line.split('name="')[1].split('"')[0]
                    count = next(
                        x for x in page.splitlines()
                        if x.startswith(f'apprelease_rollout_duration_seconds_count{{name="{name}"')
                    )  # fmt: skip
                    assert line.rsplit(" ", 1)[1] == count.rsplit(" ", 1)[1]  # +Inf bucket == _count, same record
    except BaseException as error:  # noqa: BLE001 - reported after the thread stops
        errors.append(error)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
