"""Which Docker engine `apprelease build` talks to: the one the Docker CLI would talk to.

The Docker CLI (cli/command/cli.go, resolveContextName) picks, in order: ``DOCKER_HOST`` (the "default"
context, with ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``), else the context named by ``DOCKER_CONTEXT``,
else the ``currentContext`` of ``config.json`` in ``DOCKER_CONFIG`` (default ``~/.docker``), else the default
context (the local socket). A named context's endpoint lives in
``contexts/meta/<sha256 of the name>/meta.json`` beside that ``config.json``, its TLS material in
``contexts/tls/<sha256>/docker/``. docker-py reads the environment (``docker.utils.kwargs_from_env``) and the
TLS material (``docker.tls.TLSConfig``); this module decides which setting applies, reads a context's
endpoint, and turns every failure into one line that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.tls
import requests

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Engine calls that are not a build or a push (version, tag) answer at once; a build streams for as long as
# it runs, docker-py's timeout bounds each read of that stream, not the whole build.
TIMEOUT_SECONDS = 600

# What docker-py and requests raise when the engine cannot be reached or breaks off mid-stream.
ENGINE_FAILURES = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


class EngineError(RuntimeError):
    """The Docker engine cannot be found or reached; the message is one line for the user."""


@dataclass(frozen=True)
class Endpoint:
    """Where the engine is (``base_url`` as docker-py takes it) and which setting said so."""

    host: str
    source: str
    tls: docker.tls.TLSConfig | None = None

    def describe(self) -> str:
        return f"{self.host} ({self.source})"


def config_dir(environ: Mapping[str, str]) -> Path:
    """The Docker CLI's configuration folder: ``DOCKER_CONFIG``, else ``~/.docker``."""
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _current_context(environ: Mapping[str, str]) -> tuple[str, str]:
    """(context name, which setting named it), as the Docker CLI resolves it when DOCKER_HOST is unset."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    path = config_dir(environ) / "config.json"
    try:
        current = json.loads(path.read_bytes()).get("currentContext") if path.is_file() else None
    except (OSError, ValueError, AttributeError) as err:
        raise EngineError(f"cannot read {path}: {' '.join(str(err).split())}") from None
    if isinstance(current, str) and current:
        return current, f"currentContext in {path}"
    return "default", "the default context"


def find_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the Docker CLI would use with this environment. Raises EngineError (one line)."""
    env = os.environ if environ is None else environ
    try:
        if env.get("DOCKER_HOST"):
            kwargs = docker.utils.kwargs_from_env(environment=dict(env))
            return Endpoint(kwargs["base_url"], "DOCKER_HOST", kwargs.get("tls"))
        name, source = _current_context(env)
        if name == "default":
            kwargs = docker.utils.kwargs_from_env(environment=dict(env))
            return Endpoint(kwargs.get("base_url") or DEFAULT_HOST, source, kwargs.get("tls"))
        return _named_context(name, source, env)
    except docker.errors.DockerException as err:  # bad DOCKER_TLS_VERIFY/DOCKER_CERT_PATH files, bad host
        raise EngineError(f"Docker engine settings: {' '.join(str(err).split())}") from None


def _named_context(name: str, source: str, env: Mapping[str, str]) -> Endpoint:
    """The Docker endpoint of a named context, read where the Docker CLI keeps it.

    Read here rather than with ``docker.context.ContextAPI``: docker-py looks for the contexts beside the
    first config.json it finds (``~/.docker`` even when ``DOCKER_CONFIG`` names a folder without one,
    ``./contexts`` when there is none), where the Docker CLI always uses ``DOCKER_CONFIG`` or ``~/.docker``.
    """
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta = config_dir(env) / "contexts" / "meta" / context_id / "meta.json"
    if not meta.is_file():
        raise EngineError(
            f"Docker context {name!r} (from {source}) does not exist: no {meta}; "
            "`docker context ls` lists the contexts, `docker context use default` goes back to the local engine"
        )
    try:
        endpoint = json.loads(meta.read_bytes())["Endpoints"]["docker"]
        host, skip_verify = endpoint["Host"], bool(endpoint.get("SkipTLSVerify", False))
    except (OSError, ValueError, KeyError, TypeError):
        host = None
    if not isinstance(host, str) or not host:
        raise EngineError(f"Docker context {name!r} (from {source}): {meta} holds no Docker endpoint Host")
    tls_dir = config_dir(env) / "contexts" / "tls" / context_id / "docker"
    ca, cert, key = (tls_dir / f for f in ("ca.pem", "cert.pem", "key.pem"))
    tls = None
    if tls_dir.is_dir() or skip_verify:
        tls = docker.tls.TLSConfig(
            client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            ca_cert=str(ca) if ca.is_file() else None,
            verify=not skip_verify,
        )
    return Endpoint(host, f"context {name!r} from {source}", tls)


def connect(endpoint: Endpoint) -> docker.APIClient:
    """A client of the engine, after asking it for its API version (so an unreachable engine fails here,
    with one line naming the engine and the setting that chose it, before anything is printed)."""
    try:
        return docker.APIClient(base_url=endpoint.host, tls=endpoint.tls, version="auto", timeout=TIMEOUT_SECONDS)
    except ENGINE_FAILURES as err:
        raise EngineError(
            f"cannot reach the Docker engine at {endpoint.describe()}: {' '.join(str(err).split())}; "
            "start it, or point DOCKER_HOST or a docker context (`docker context use`) at a running one"
        ) from None
