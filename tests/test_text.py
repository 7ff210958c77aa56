"""The one sanitiser for foreign text (clusters, registries, git): every hostile character shown, inert, on one line."""

from __future__ import annotations

import pytest

from apprelease.controller.report import Report
from apprelease.core import limits
from apprelease.core.api import AppRelease, HistoryEntry
from apprelease.core.conditions import set_condition
from apprelease.core.failures import mark_failed
from apprelease.core.text import inert, inert_block
from apprelease.core.workloads import judge
from tests.conftest import NAME, NS, FakeCluster

HOSTILE: list[tuple[str, str]] = [
    ("a\x1b[2Jb", "a\\x1b[2Jb"),  # CSI: clear the screen
    ("\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "\\x1b]8;;https://evil.example\\x07link\\x1b]8;;\\x07"),
    ("\x9b31m", "\\x9b31m"),  # 8-bit CSI
    ("\x7f\x00", "\\x7f\\x00"),
    ("one\ntwo", "one\\ntwo"),  # one logical line per field: no fake table line
    ("one\r\ntwo", "one\\r\\ntwo"),
    ("cell\tcell", "cell\\tcell"),
    ("\x0b\x0c\x1c\x1d\x1e\x85", "\\x0b\\x0c\\x1c\\x1d\\x1e\\x85"),  # what str.splitlines breaks on
    ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # Unicode line and paragraph separators
    ("v1\u202e2v", "v1\\u202e2v"),  # right-to-left override: shows "v1v2" reversed
    ("".join(map(chr, range(0x202A, 0x202F))), "\\u202a\\u202b\\u202c\\u202d\\u202e"),
    ("".join(map(chr, range(0x2066, 0x206A))), "\\u2066\\u2067\\u2068\\u2069"),
    ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # implicit direction marks
    ("we\u200bb\u200c\u200d\u2060\ufeff", "we\\u200bb\\u200c\\u200d\\u2060\\ufeff"),  # zero-width
    ("\u00ad", "\\xad"),  # soft hyphen: invisible
    ("tag\U000e0041", "tag\\U000e0041"),  # Unicode tag characters: invisible
    ("\ud800", "\\ud800"),  # a lone surrogate (from a JSON \\ud800 escape)
    ("[/] [link=https://evil.example]x[/link]", "[/] [link=https://evil.example]x[/link]"),  # markup is rich's job
    ("café 日本語 Ελληνικά 🙂 ∑", "café 日本語 Ελληνικά 🙂 ∑"),  # ordinary text stays readable
    ("C:\\x1b is a path", "C:\\x1b is a path"),  # backslashes are not doubled: no double escaping
    ("", ""),
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_hostile_characters_are_shown_escaped_on_one_line(raw: str, shown: str) -> None:
    assert inert(raw) == shown
    assert inert(inert(raw)) == shown  # sanitising twice (operator, then CLI) changes nothing more
    assert len(shown.splitlines()) <= 1 and shown.isprintable() or shown == ""


def test_non_text_values() -> None:
    assert inert(None) == ""
    assert inert(42) == "42"


def test_a_block_keeps_its_lines_and_tabs_but_nothing_else() -> None:
    assert (
        inert_block("-  version: v2\n+  version: v1\u202e\n\tx\r\n")
        == "-  version: v2\n+  version: v1\\u202e\n\tx\\r\n"
    )


def test_the_operator_quotes_foreign_values_with_the_same_rule() -> None:
    assert limits.quoted("v1\nReady: True\u202e") == "'v1\\nReady: True\\u202e'"
    assert limits.message("pulled\n\x1b[2Jdone\u200b") == "pulled\\n\\x1b[2Jdone\\u200b"
    # what is already escaped is not escaped again when a message is sanitised as a whole
    quoted = limits.quoted("a\nb")
    assert limits.message(f"label {quoted}") == "label 'a\\nb'"
    assert len(limits.message("\n" * 5000)) == limits.MAX_MESSAGE


def test_what_the_operator_copies_from_workloads_is_inert() -> None:
    deadline = {
        "status": {
            "conditions": [
                {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "slow\nReady\u202e"}
            ]
        }
    }
    assert judge("Deployment", deadline).detail.endswith(": slow\\nReady\\u202e")
    entry = HistoryEntry(revision=1, version="v1", digest="sha256:" + "a" * 64)
    [failed] = mark_failed([entry], 1, "pod web-1 is CrashLoopBackOff\n*2 v2 Succeeded\u200b")
    assert failed.failure == "pod web-1 is CrashLoopBackOff\\n*2 v2 Succeeded\\u200b"


def test_conditions_and_events_the_operator_writes_are_inert() -> None:
    [condition] = set_condition([], "Ready", "False", "X", "pulled\n\x1b[2J\u202e " + "y" * 2000, 1, "T")
    assert condition.message.startswith("pulled\\n\\x1b[2J\\u202e y") and len(condition.message) == 1024
    cluster = FakeCluster()
    release = AppRelease.from_k8s(
        {"metadata": {"name": NAME, "namespace": NS, "uid": "u"}, "spec": {"image": "r.example/a", "version": "v1"}}
    )
    report = Report(cluster, release, "T")
    said = limits.quoted("a\u200bb")
    report.event("Warning", "RolloutFailed", f"pod said {said}: line\nbreak")
    report.finish()
    assert [e.message for e in cluster.events] == ["pod said 'a\\u200bb': line\\nbreak"]
