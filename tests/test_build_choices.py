"""`apprelease build`: which tag a commit is, and which Docker engine builds it (as the Docker CLI finds it)."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from apprelease.cli.engine import DEFAULT_HOST, EngineError, connect, find_endpoint
from apprelease.cli.gitinfo import GitError, GitState, release_version
from apprelease.core.versions import choose_tag, image_tag_problem


@pytest.mark.parametrize(
    ("tags", "chosen"),
    [
        (["v1.2.3"], "v1.2.3"),
        (["v1.2.3-rc.1", "v1.2.3"], "v1.2.3"),  # promoted: the final version wins over its prerelease
        (["v1.2.3", "v1.2.3-rc.1", "v1.2.3-rc.2", "v1.2.3-beta"], "v1.2.3"),
        (["1.2.3-alpha.1", "1.2.3"], "1.2.3"),
        (["v1.2.3+build.7", "v1.2.3-rc.1"], "v1.2.3+build.7"),  # chosen, then explained as no image tag
        (["release-2024-05"], "release-2024-05"),
        (["v1.2.3", "v1.2.3"], "v1.2.3"),
    ],
)
def test_the_final_version_wins_over_its_prereleases(tags: list[str], chosen: str) -> None:
    assert choose_tag(tags) == chosen


@pytest.mark.parametrize(
    "tags",
    [
        ["v1.2.3", "v2.0.0"],
        ["v1.2.3-rc.1", "v1.2.4"],  # a final of another version is no promotion
        ["v1.2.3-rc.1", "v1.2.3-rc.2"],  # no final: which rc is this commit?
        ["v1.2.3", "1.2.3"],  # two spellings, two image tags
        ["v1.2.3", "v1.2.3+build.7"],
        ["deploy-prod", "deploy-staging"],
        ["v1.2.3", "stable"],
    ],
)
def test_a_choice_the_rules_cannot_make_is_refused_listing_the_tags(tags: list[str]) -> None:
    with pytest.raises(ValueError) as refused:
        choose_tag(tags, "abc123")
    message = str(refused.value)
    assert all(tag in message for tag in tags)
    assert "--version" in message and "abc123" in message and "\n" not in message


def test_release_version_uses_the_rules_and_the_override_wins() -> None:
    state = GitState(commit="c" * 40, short_commit="c" * 12, tags=("v2.0.0", "v1.0.0"), dirty=False, source=None)
    with pytest.raises(GitError, match="several tags"):
        release_version(state, None)
    assert release_version(state, "v2.0.0") == "v2.0.0"


def test_build_metadata_is_explained_with_what_to_do() -> None:
    problem = image_tag_problem("v1.2.3+build.7")
    assert problem is not None
    assert "'+'" in problem and "OCI tag" in problem
    assert "git tag v1.2.3" in problem and "--version v1.2.3" in problem and "v1.2.3_build.7" in problem
    assert image_tag_problem("v1.2.3-rc.1") is None


# --- the engine ----------------------------------------------------------------------------------------
def make_context(config: Path, name: str, host: str, *, current: bool = True) -> None:
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    document = {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
    (meta / "meta.json").write_text(json.dumps(document))
    if current:
        (config / "config.json").write_text(json.dumps({"currentContext": name, "auths": {}}))


def test_docker_host_wins_over_every_context(tmp_path: Path) -> None:
    make_context(tmp_path, "remote", "tcp://192.0.2.1:2375")
    env = {"DOCKER_CONFIG": str(tmp_path), "DOCKER_HOST": "unix:///run/user/1000/docker.sock", "DOCKER_CONTEXT": "x"}
    endpoint = find_endpoint(env)
    assert (endpoint.host, endpoint.source, endpoint.tls) == (
        "unix:///run/user/1000/docker.sock",
        "DOCKER_HOST",
        None,
    )


def test_docker_tls_variables_apply_to_docker_host(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not checked until a connection")
    env = {"DOCKER_HOST": "tcp://engine.example:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    endpoint = find_endpoint(env)
    assert endpoint.host == "tcp://engine.example:2376"
    assert endpoint.tls is not None and endpoint.tls.verify and endpoint.tls.ca_cert == str(tmp_path / "ca.pem")
    assert endpoint.tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def test_docker_context_then_current_context_then_the_default_socket(tmp_path: Path) -> None:
    make_context(tmp_path, "colima", "unix:///home/u/.colima/default/docker.sock")
    make_context(tmp_path, "remote", "tcp://engine.example:2375", current=False)
    env = {"DOCKER_CONFIG": str(tmp_path)}
    current = find_endpoint(env)
    assert current.host == "unix:///home/u/.colima/default/docker.sock"
    assert "'colima'" in current.source and "currentContext" in current.source
    named = find_endpoint({**env, "DOCKER_CONTEXT": "remote"})
    assert named.host == "tcp://engine.example:2375" and "DOCKER_CONTEXT" in named.source
    assert find_endpoint({**env, "DOCKER_CONTEXT": "default"}).host == DEFAULT_HOST
    assert find_endpoint({"DOCKER_CONFIG": str(tmp_path / "none")}).host == DEFAULT_HOST


def test_context_tls_material_is_used(tmp_path: Path) -> None:
    make_context(tmp_path, "secure", "tcp://engine.example:2376")
    tls = tmp_path / "contexts" / "tls" / hashlib.sha256(b"secure").hexdigest() / "docker"
    tls.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tls / name).write_text("x")
    endpoint = find_endpoint({"DOCKER_CONFIG": str(tmp_path)})
    assert endpoint.tls is not None and endpoint.tls.verify and endpoint.tls.ca_cert == str(tls / "ca.pem")
    assert endpoint.tls.cert == (str(tls / "cert.pem"), str(tls / "key.pem"))


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: (d / "config.json").write_text('{"currentContext": "gone"}'), "does not exist"),
        (lambda d: (d / "config.json").write_text("{not json"), "cannot read"),
        (lambda d: make_context(d, "broken", ""), "no Docker endpoint"),
    ],
)
def test_a_context_that_cannot_be_used_is_one_line(tmp_path: Path, setup: object, fragment: str) -> None:
    setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(EngineError) as refused:
        find_endpoint({"DOCKER_CONFIG": str(tmp_path)})
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


def test_an_engine_that_does_not_answer_is_one_line_naming_it_and_its_source(tmp_path: Path) -> None:
    closed = tmp_path / "closed.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(closed))
    listener.close()  # the path stays, nobody listens: connection refused
    for path in (closed, tmp_path / "missing.sock"):
        endpoint = find_endpoint({"DOCKER_HOST": f"unix://{path}"})
        with pytest.raises(EngineError) as refused:
            connect(endpoint)
        message = str(refused.value)
        assert str(path) in message and "DOCKER_HOST" in message and "\n" not in message
