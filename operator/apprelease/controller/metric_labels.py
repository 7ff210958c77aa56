"""Label values that come from tenants or registries, folded into a bounded set (pure functions and one fold).

A label value is a time series for as long as the process lives: a tenant who may write `spec.image` or a
registry that picks its status codes must not be able to grow the operator's memory and every scrape without end
(Prometheus' own advice: "do not use labels to store dimensions with high cardinality").
"""

from __future__ import annotations

import threading

from apprelease.core.registrypolicy import host_allowed

OTHER = "other"
NO_RESPONSE = "error"  # the `code` of a registry request that got no HTTP response (refused, timeout, TLS)
EXACT_CODES = frozenset({200, 401, 403, 404, 429})  # the ones an operator acts on; the rest by class
METHODS = frozenset({"GET", "HEAD"})  # all the registry client sends
DEFAULT_MAX_REGISTRIES = 32


def status_code(code: int | None) -> str:
    """`code` label: 200, 401, 403, 404 and 429 exactly, other answers by class (`3xx`, `5xx`...),
    `error` for no response, `other` for what is not an HTTP status (RFC 9110 15: 100-599)."""
    if code is None:
        return NO_RESPONSE
    if code in EXACT_CODES:
        return str(code)
    if 100 <= code <= 599:
        return f"{code // 100}xx"
    return OTHER


def method(name: str) -> str:
    upper = name.upper()
    return upper if upper in METHODS else OTHER


class RegistryLabels:
    """The `registry` label of a request to `domain` (host[:port]).

    With allowed registries, the allowed pattern the host matches (`registry.example.com`, or `*.corp.example`
    for any of its hosts) and `other` for anything else (token services and redirect targets on other hosts):
    the label set is the operator's configuration. Without, the first `max_distinct` hosts seen keep their
    name and later ones are `other`.
    """

    def __init__(self, allowed: list[str] | tuple[str, ...] = (), max_distinct: int = DEFAULT_MAX_REGISTRIES) -> None:
        self._allowed = [p.strip().lower() for p in allowed if p.strip()]
        self._max = max_distinct
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # called from the reconcile worker threads

    def __call__(self, domain: str) -> str:
        host = domain.strip().lower()
        if self._allowed:
            return next((p for p in self._allowed if host_allowed(host, [p])), OTHER)
        with self._lock:
            if host in self._seen:
                return host
            if len(self._seen) < self._max:
                self._seen.add(host)
                return host
        return OTHER
