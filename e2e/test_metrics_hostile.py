"""The running operator's /metrics against hostile clients (issue 16, case 1): slow and oversized request heads
cost the operator little memory, and a normal scrape still answers."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.hostile_http import SlowClients, exchange
from e2e.support import Operator, Testbed

MiB = 1024


def metrics_port(testbed: Testbed) -> int:
    return int(testbed.operator_env()["APPRELEASE_METRICS_PORT"])


def scrape(port: int, timeout: float) -> set[str]:
    """One normal scrape (the client gives up after `timeout` s): the metric families on the page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        assert response.status == 200
        text = response.read().decode()
    return {family.name for family in text_string_to_metric_families(text)}


def test_a_hundred_slow_clients_cost_little_memory_and_a_scrape_still_answers(
    testbed: Testbed, operator: Operator
) -> None:
    port = metrics_port(testbed)
    assert "apprelease_workqueue_depth" in scrape(port, 5)
    time.sleep(1)
    before = operator.rss_kib()
    peak = before
    answered = 0
    with SlowClients(port, count=100) as clients:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
            peak = max(peak, operator.rss_kib())
            if clients.connects >= 100:
                # The bar: a normal scrape answers within 1 s while the slow clients hold on.
                assert "apprelease_workqueue_depth" in scrape(port, 1.0)
                answered += 1
        peak = max(peak, operator.rss_kib())
        sent, connects = clients.sent, clients.connects
    assert connects >= 100 and answered >= 5, (connects, answered)
    growth = (peak - before) / MiB
    print(f"slow clients: {connects} connections, {sent / MiB / 1024:.1f} MiB sent; operator RSS +{growth:.1f} MiB")
    assert growth < 20, f"operator RSS grew {growth:.1f} MiB ({before / MiB:.1f} -> {peak / MiB:.1f})"
    assert "apprelease_workqueue_depth" in scrape(port, 1.0)


@pytest.mark.parametrize(
    "head",
    [
        b"".join(b"X-%d: y\r\n" % i for i in range(200)),
        b"X-Big: " + b"a" * 100 * 1024 + b"\r\n",
        b"X-Half-1: " + b"a" * 50 * 1024 + b"\r\nX-Half-2: " + b"a" * 50 * 1024 + b"\r\n",
        b"".join(b"X-%d: y\r\n" % i for i in range(60)),
    ],
    ids=["200-header-lines", "one-100KiB-header", "100KiB-in-two-headers", "60-header-lines"],
)
def test_an_oversized_request_head_is_refused(testbed: Testbed, operator: Operator, head: bytes) -> None:
    answer = exchange(metrics_port(testbed), b"GET /metrics HTTP/1.1\r\nHost: operator\r\n" + head + b"\r\n")
    assert b"apprelease_" not in answer, answer[:300]
    # 431, or a reset when the refusal overtook the bytes the client was still sending.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    if len(head) < 8000:  # all sent before the server answers: the refusal must be readable
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:300]
