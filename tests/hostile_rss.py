"""Peak RSS of a fresh process under each hostile-registry case (numbers for reports, never asserted).

    .venv/bin/python tests/hostile_rss.py

Each case of tests/test_registry_hostile.py runs in its own interpreter, with tracemalloc off, and prints the
process's resident memory before the case and at its peak (ru_maxrss).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES: list[tuple[str, list[object]]] = [
    ("test_gzip_of_gzip_bomb_is_cut_at_the_limit_without_inflating_it", []),
    ("test_a_config_of_millions_of_empty_lists_is_refused_before_parsing", []),
    ("test_deeply_nested_json_is_a_registry_error_not_a_recursion_error", ["manifest"]),
    ("test_deeply_nested_json_is_a_registry_error_not_a_recursion_error", ["config"]),
    ("test_a_deeply_nested_token_reply_is_a_registry_error", []),
    ("test_a_registry_sending_one_byte_at_a_time_is_cut_at_the_deadline", ["status line"]),
    ("test_a_registry_sending_one_byte_at_a_time_is_cut_at_the_deadline", ["body"]),
    ("test_the_deadline_covers_the_token_round_trip", []),
    ("test_redirects_are_checked_hop_by_hop", ["http://169.254.169.254/latest/meta-data/"]),
    ("test_a_token_realm_redirected_to_a_metadata_address_is_refused", []),
    ("test_a_refresh_token_is_never_re_sent_to_another_host", []),
    ("test_no_cookie_earned_by_one_tenant_is_replayed_for_another", []),
    ("test_a_closed_port_an_open_one_and_a_non_registry_look_the_same", []),
]

_CHILD = """
import contextlib, json, resource, sys, time
sys.path[:0] = [{root!r}]
import tests.test_registry_hostile as cases
from tests.hostile import gzip_bomb
gzip_bomb(256 * 1024 * 1024)  # built before the baseline: it is the test's input, not the client's cost
@contextlib.contextmanager
def untraced():
    yield [0]
cases.peak_memory = untraced
servers = []
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    getattr(cases, {name!r})(servers, *{params!r})
    outcome = "passed"
except BaseException as exc:
    outcome = "failed: " + type(exc).__name__
elapsed = time.monotonic() - started
for server in servers:
    server.close()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before_mib": before / 1024, "peak_mib": peak / 1024, "seconds": elapsed, "outcome": outcome}}))
"""


def main() -> None:
    print(f"{'case':<84} {'RSS before':>10} {'peak':>8} {'secs':>5}  outcome")
    for name, params in CASES:
        code = _CHILD.format(here=str(HERE), root=str(HERE.parent), name=name, params=params)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        with contextlib.suppress(ValueError, IndexError):
            line = json.loads(result.stdout.strip().splitlines()[-1])
            label = name.removeprefix("test_") + (f"[{params[0]}]" if params else "")
            print(
                f"{label[:84]:<84} {line['before_mib']:>8.1f}Mi {line['peak_mib']:>6.1f}Mi "
                f"{line['seconds']:>5.1f}  {line['outcome']}"
            )
            continue
        print(f"{name}: no result ({result.stderr.strip()[-300:]})")


if __name__ == "__main__":
    main()
