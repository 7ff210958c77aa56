"""Which pull secrets a resolution reads: the kubelet's order, each once, and a bounded number however many a
tenant's pod templates and ServiceAccounts name (each one is a Secret read per resolution)."""

from __future__ import annotations

import logging

import pytest

from apprelease.controller import pullsecrets
from apprelease.core.api import AppReleaseSpec, Workload
from apprelease.core.spec import ReleaseSpec
from apprelease.core.validation import check_spec


class Accounts:
    """The cluster seam `secret_names` uses: ServiceAccount -> its imagePullSecrets names."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    def get_service_account_pull_secrets(self, namespace: str, name: str) -> list[str]:
        return self.names.get(name, [])


def spec() -> ReleaseSpec:
    checked = check_spec(AppReleaseSpec(image="r.example/shop/web", version="v1", workloads=[Workload(name="web")]))
    assert isinstance(checked, ReleaseSpec)
    return checked


def test_the_pod_templates_then_their_accounts_each_once_in_order() -> None:
    pods: list[dict[str, object]] = [
        {"imagePullSecrets": [{"name": "a"}, {"name": "b"}], "serviceAccountName": "builder"},
        {"imagePullSecrets": [{"name": "b"}]},
    ]
    accounts = Accounts({"builder": ["c", "a"], "default": ["d"]})
    assert pullsecrets.secret_names(spec(), pods, accounts, "shop") == ["a", "b", "c", "d"]  # type: ignore[arg-type]


def test_thousands_of_names_are_cut_to_the_first_ones_and_the_cut_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    many = [{"name": f"s{i}"} for i in range(5000)]
    pods: list[dict[str, object]] = [{"imagePullSecrets": many}]
    with caplog.at_level(logging.WARNING):
        names = pullsecrets.secret_names(spec(), pods, Accounts({}), "shop")  # type: ignore[arg-type]
    assert names == [f"s{i}" for i in range(pullsecrets.MAX_PULL_SECRETS)]
    assert "5000 imagePullSecrets" in caplog.text
