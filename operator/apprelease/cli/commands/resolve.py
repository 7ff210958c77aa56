"""`apprelease resolve`: a tag's digest, with the operator's registry client and the user's credentials."""

from __future__ import annotations

import os

import typer

from apprelease.cli.app import Output, dump, fail, out
from apprelease.cli.registryaccess import docker_keyring
from apprelease.cli.text import plain
from apprelease.core import reference
from apprelease.registry import Credential, RegistryClient, RegistryError, RegistrySettings


def resolve(
    image: str = typer.Argument(..., help="IMAGE:TAG to resolve."),
    insecure_registry: list[str] = typer.Option(
        [], "--insecure-registry", help="Registry host reached over plain http (repeatable)."
    ),
    ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM file of extra CAs."),
    output: Output = typer.Option(Output.TABLE, "--output", "-o", help="table (just the reference), json, yaml."),
) -> None:
    """Print IMAGE@sha256:... for a tag, with the operator's registry client and your docker credentials."""
    try:
        ref = reference.parse(image)
    except ValueError as problem:
        fail(str(problem))
    if ref.tag is None:
        fail(f"{image}: give a tag to resolve (IMAGE:TAG)")
    env_insecure = [h for h in os.environ.get("APPRELEASE_INSECURE_REGISTRIES", "").split(",") if h]
    settings = RegistrySettings(
        insecure_registries=[*insecure_registry, *env_insecure],
        ca_bundle=ca_bundle or os.environ.get("APPRELEASE_CA_BUNDLE") or None,
    )
    found = docker_keyring().lookup(ref.repository)
    credential: Credential | None = found[0] if found else None
    try:
        with RegistryClient(settings) as registry:
            resolved = registry.resolve(ref, credential, use_cache=False)
    except RegistryError as problem:
        fail(str(problem))
    if output == Output.TABLE:
        out.print(plain(resolved.pinned), markup=False, highlight=False)
        return
    data = {"reference": str(ref), "pinned": resolved.pinned, "digest": resolved.digest}
    dump({**data, "mediaType": resolved.media_type}, output)
