"""The newest resourceVersion seen of each AppRelease (controller/seenversions.py): what a pass reads from the
watch cache must be at least that new."""

from __future__ import annotations

from apprelease.controller.seenversions import SeenVersions

KEY = ("shop", "web")


def test_the_newest_version_is_kept_whatever_order_they_are_seen_in() -> None:
    versions = SeenVersions()
    assert versions.newest(KEY) is None  # never seen: a quorum read
    versions.note(KEY, "900")
    versions.note(KEY, "1000")  # a write's answer
    versions.note(KEY, "950")  # an event of an older write, delivered after it ("950" > "1000" as text)
    assert versions.newest(KEY) == "1000"
    versions.note(KEY, "18446744073709551615")  # etcd's largest
    assert versions.newest(KEY) == "18446744073709551615"


def test_a_version_that_is_not_etcds_is_not_kept() -> None:
    versions = SeenVersions()
    for odd in ["", "abc", "12a", "-5", "1e3", "٣", "1" * 21, None, 42, " 12"]:
        versions.note(KEY, odd)
    assert versions.newest(KEY) is None and len(versions) == 0
    versions.note(KEY, "7")
    versions.note(KEY, "x9")  # a storage other than etcd: never replaces what was seen
    assert versions.newest(KEY) == "7"


def test_a_deleted_apprelease_is_forgotten() -> None:
    versions = SeenVersions()
    versions.note(KEY, "5")
    versions.note(("shop", "api"), "6")
    versions.forget(KEY)
    versions.forget(("nowhere", "x"))
    assert versions.newest(KEY) is None and versions.newest(("shop", "api")) == "6"
