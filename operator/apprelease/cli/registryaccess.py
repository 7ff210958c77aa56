"""How the CLI reaches registries with the operator's client: the user's docker credentials, plain-http hosts.

Plain http: hosts given with ``--insecure-registry`` or in ``APPRELEASE_INSECURE_REGISTRIES``; and, as the
Docker engine does by default, a loopback registry (127.0.0.0/8, localhost) when https fails there
(``insecure_hosts(..., domain)`` names it), since ``apprelease build`` pushes to it through the engine without
any configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from apprelease.cli.app import err
from apprelease.cli.text import safe
from apprelease.reference import Reference
from apprelease.registry import Credential, RegistrySettings
from apprelease.registry.credentials import Keyring
from apprelease.registry.hops import is_loopback_host

__all__ = ["docker_credential", "docker_keyring", "insecure_hosts", "registry_settings"]


def docker_keyring() -> Keyring:
    """Your docker config's credentials, chosen as the kubelet chooses them (so the CLI sees what a node given
    the same config as a pull secret would)."""
    keyring = Keyring()
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = folder / "config.json"
    if not path.is_file():
        return keyring
    try:
        keyring.add(path.read_bytes())
    except ValueError as problem:
        err.print(f"[yellow]warning:[/] {safe(path)}: {safe(problem)}")
    return keyring


def docker_credential(repository: Reference) -> Credential | None:
    found = docker_keyring().lookup(repository.repository)
    return found[0] if found else None


def insecure_hosts(options: list[str], domain: str | None = None) -> list[str]:
    hosts = [*options, *(h for h in os.environ.get("APPRELEASE_INSECURE_REGISTRIES", "").split(",") if h)]
    if domain is not None and is_loopback_host(httpx.URL(f"http://{domain}").host):
        hosts.append(domain)
    return hosts


def registry_settings(options: list[str], ca_bundle: str | None, domain: str | None = None) -> RegistrySettings:
    return RegistrySettings(
        insecure_registries=insecure_hosts(options, domain),
        ca_bundle=ca_bundle or os.environ.get("APPRELEASE_CA_BUNDLE") or None,
    )
