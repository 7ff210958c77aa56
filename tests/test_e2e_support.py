"""The e2e suite's own log checks, which must neither miss a refusal nor see one in a timestamp."""

from __future__ import annotations

from e2e.support import refusals

CLEAN = (
    "2026-11-27 14:21:04,403 INFO apprelease.controller.report: ns/web Deploying: revision 2: v1.1.0 resolved to "
    "sha256:e18340eba8ab68f1f49c93948943d14363fe06dda94ca8a659ea6b85a446c96f\n"
    '2026-11-27 14:21:03,294 INFO aiohttp.access: 127.0.0.1 "GET /metrics HTTP/1.1" 200 403 "-" "curl/7.88.1"\n'
)


def test_milliseconds_and_sizes_of_403_are_not_refusals() -> None:
    assert refusals(CLEAN) == []


def test_each_form_of_a_refusal_is_found() -> None:
    kopf = (
        "2026-11-27 14:21:05,001 ERROR kopf._cogs.clients.watching: APIForbiddenError: "
        "('namespaces is forbidden: User \"system:serviceaccount:a:b\" cannot list resource', {'code': 403})"
    )
    client = "2026-11-27 14:21:05,002 WARNING apprelease.events: could not post: (403)"
    status = '2026-11-27 14:21:05,003 WARNING x: {"kind": "Status", "code": 403}'
    assert refusals("\n".join([CLEAN, kopf, client, status])) == [kopf, client, status]
