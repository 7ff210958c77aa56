"""Operator settings come from APPRELEASE_* environment variables, lists as comma-separated text."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apprelease.controller.settings import OperatorSettings


def test_defaults_watch_everything_over_https_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APPRELEASE_INSECURE_REGISTRIES", "APPRELEASE_WATCH_NAMESPACES", "APPRELEASE_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    settings = OperatorSettings()
    assert settings.insecure_registries == [] and settings.watch_namespaces == []
    assert settings.registry().insecure_registries == [] and settings.registry().ca_bundle is None


def test_comma_separated_lists_and_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRELEASE_INSECURE_REGISTRIES", "127.0.0.1:5000, registry.local:80,")
    monkeypatch.setenv("APPRELEASE_WATCH_NAMESPACES", "shop,payments")
    monkeypatch.setenv("APPRELEASE_CA_BUNDLE", "/etc/apprelease/ca/ca.crt")
    monkeypatch.setenv("APPRELEASE_RESYNC_SECONDS", "60")
    monkeypatch.setenv("APPRELEASE_REGISTRY_TIMEOUT_SECONDS", "3.5")
    settings = OperatorSettings()
    assert settings.insecure_registries == ["127.0.0.1:5000", "registry.local:80"]
    assert settings.watch_namespaces == ["shop", "payments"]
    assert settings.resync_seconds == 60
    registry = settings.registry()
    assert registry.insecure_registries == ["127.0.0.1:5000", "registry.local:80"]
    assert registry.ca_bundle == "/etc/apprelease/ca/ca.crt" and registry.timeout_seconds == 3.5


def test_nonsense_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRELEASE_RESYNC_SECONDS", "-1")
    with pytest.raises(ValidationError):
        OperatorSettings()


def test_allowed_private_networks_and_the_resolution_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPRELEASE_ALLOWED_PRIVATE_NETWORKS", "10.20.0.0/16, fd00:1::/64")
    monkeypatch.setenv("APPRELEASE_REGISTRY_RESOLUTION_TIMEOUT_SECONDS", "12")
    registry = OperatorSettings().registry()
    assert registry.allowed_private_networks == ["10.20.0.0/16", "fd00:1::/64"]
    assert registry.resolution_timeout_seconds == 12
    monkeypatch.setenv("APPRELEASE_ALLOWED_PRIVATE_NETWORKS", "10.20.0.0/33")
    with pytest.raises(ValidationError):
        OperatorSettings()


def test_uid_binding_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPRELEASE_REQUIRE_UID_BINDING", raising=False)
    assert OperatorSettings().require_uid_binding is False
    monkeypatch.setenv("APPRELEASE_REQUIRE_UID_BINDING", "true")  # what the chart renders
    assert OperatorSettings().require_uid_binding is True
    monkeypatch.setenv("APPRELEASE_REQUIRE_UID_BINDING", "maybe")
    with pytest.raises(ValidationError):
        OperatorSettings()
