"""`apprelease build` in the field (issue 15, case 4): commits with several tags, the engine found as the Docker
CLI finds it (DOCKER_HOST, contexts), and engine failures as one line, through the real CLI, Docker engine and
registry of the test bed."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.engine_relay import EngineRelay
from e2e.images import git, make_app_repo, skopeo_digest, skopeo_labels
from e2e.support import Testbed
from e2e.test_cli import cli


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket path must stay under 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="ar-") as folder:
        yield Path(folder)


def engine_env(testbed: Testbed, docker_config: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any Docker engine setting but DOCKER_CONFIG (and ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return {**env, "DOCKER_CONFIG": str(docker_config), **extra}


def registry_tags(testbed: Testbed, image: str) -> set[str]:
    path = image.removeprefix(f"{testbed.registry}/")
    reply = httpx.get(f"http://{testbed.registry}/v2/{path}/tags/list")
    reply.raise_for_status()
    return set(reply.json().get("tags") or [])


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_promoted_commit_pushes_the_final_version_not_its_prerelease(testbed: Testbed, tmp_path: Path) -> None:
    repo = tmp_path / "promoted"
    commits = make_app_repo(repo, testbed.base_image, ["v1.2.3-rc.1"])
    git(repo, "tag", "v1.2.3")  # the rc, promoted: both tags at HEAD
    image = f"{testbed.registry}/cli/promoted-{uuid.uuid4().hex[:12]}"  # the registry outlives test runs

    result = cli("build", "--image", image, "--push", "--quiet", str(repo))
    assert result.returncode == 0, result.stderr
    digest = skopeo_digest(f"{image}:v1.2.3", tls_verify=False)
    assert result.stdout.strip() == f"{image}@{digest}"
    assert skopeo_labels(f"{image}:v1.2.3")["org.opencontainers.image.version"] == "v1.2.3"
    short = commits["v1.2.3-rc.1"][:12]
    assert registry_tags(testbed, image) == {"v1.2.3", short}  # the rc tag was not moved to this build


def test_tags_the_rules_cannot_choose_from_are_refused_and_build_metadata_explained(
    testbed: Testbed, tmp_path: Path
) -> None:
    repo = tmp_path / "ambiguous"
    make_app_repo(repo, testbed.base_image, ["v1.2.3"])
    git(repo, "tag", "v2.0.0")
    image = f"{testbed.registry}/cli/ambiguous"
    refused = cli("build", "--image", image, "--push", str(repo))
    assert refused.returncode != 0
    line = one_error_line(refused.stderr)
    assert "v1.2.3" in line and "v2.0.0" in line and "--version" in line

    chosen = cli("build", "--image", image, "--version", "v2.0.0", "--quiet", str(repo))
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == f"{image}:v2.0.0"

    metadata = tmp_path / "metadata"
    make_app_repo(metadata, testbed.base_image, ["v1.4.0+build.7"])
    explained = cli("build", "--image", image, str(metadata))
    assert explained.returncode != 0
    line = one_error_line(explained.stderr)
    assert "'+'" in line and "OCI tag" in line and "git tag v1.4.0" in line and "--version v1.4.0" in line


def make_context(docker_config: Path, name: str, host: str) -> None:
    meta = docker_config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoint = {"docker": {"Host": host, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": endpoint}))


def test_the_current_docker_context_and_docker_context_name_the_engine(
    testbed: Testbed, tmp_path: Path, short_dir: Path
) -> None:
    repo = tmp_path / "ctx"
    make_app_repo(repo, testbed.base_image, ["v0.9.0"])
    image = f"{testbed.registry}/cli/ctx-{uuid.uuid4().hex[:12]}"  # a version is built once: a repository per run
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    with EngineRelay(short_dir / "relay.sock", testbed.docker_host) as relay:
        make_context(docker_config, "testbed-relay", f"unix://{relay.listen}")
        (docker_config / "config.json").write_text(json.dumps({"currentContext": "testbed-relay"}))

        current = cli("build", "--image", image, "--push", str(repo), env=engine_env(testbed, docker_config))
        assert current.returncode == 0, current.stderr
        assert "context 'testbed-relay' from currentContext" in current.stderr
        assert relay.connections > 0
        assert current.stdout.strip() == f"{image}@{skopeo_digest(f'{image}:v0.9.0', tls_verify=False)}"

        (docker_config / "config.json").write_text("{}")
        before = relay.connections
        named = cli(
            "build",
            "--image",
            image,
            str(repo),
            env=engine_env(testbed, docker_config, DOCKER_CONTEXT="testbed-relay"),
        )
        assert named.returncode == 0, named.stderr
        assert "context 'testbed-relay' from DOCKER_CONTEXT" in named.stderr
        assert relay.connections > before

        # DOCKER_HOST wins over any context, as with the Docker CLI.
        direct = cli(
            "build",
            "--image",
            image,
            "--quiet",
            str(repo),
            env=engine_env(testbed, docker_config, DOCKER_CONTEXT="gone", DOCKER_HOST=testbed.docker_host),
        )
        assert direct.returncode == 0, direct.stderr

    missing = cli("build", "--image", image, str(repo), env=engine_env(testbed, docker_config, DOCKER_CONTEXT="gone"))
    assert missing.returncode != 0
    assert "'gone'" in one_error_line(missing.stderr)


def test_engine_failures_are_one_line_without_a_traceback(testbed: Testbed, tmp_path: Path, short_dir: Path) -> None:
    repo = tmp_path / "fails"
    make_app_repo(repo, testbed.base_image, ["v0.1.0"])
    image = f"{testbed.registry}/cli/fails"
    docker_config = tmp_path / "docker-config"  # no credentials of the caller's
    docker_config.mkdir()

    closed = short_dir / "closed.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(closed))
    listener.close()  # the socket file stays; nobody listens
    for host in (f"unix://{closed}", f"unix://{short_dir / 'missing.sock'}"):
        unreachable = cli(
            "build", "--image", image, str(repo), env=engine_env(testbed, docker_config, DOCKER_HOST=host)
        )
        assert unreachable.returncode != 0
        line = one_error_line(unreachable.stderr)
        assert host.removeprefix("unix://") in line and "DOCKER_HOST" in line

    env = engine_env(testbed, docker_config, DOCKER_HOST=testbed.docker_host)
    (repo / "Dockerfile").write_text(f"FROM {testbed.base_image}\nRUN echo failing on purpose && exit 7\n")
    git(repo, "commit", "-qam", "a broken build")
    git(repo, "tag", "v0.2.0")
    broken = cli("build", "--image", image, "--quiet", str(repo), env=env)
    assert broken.returncode != 0
    assert "docker build failed" in one_error_line(broken.stderr)

    git(repo, "checkout", "-q", "v0.1.0")
    refused_image = f"{testbed.registry_auth}/cli/no-credentials"
    refused = cli("build", "--image", refused_image, "--push", "--quiet", str(repo), env=env)
    assert refused.returncode != 0
    assert "push" in one_error_line(refused.stderr)
