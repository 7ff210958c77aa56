"""Baking small test images with the real Docker engine and pushing them to the test bed's registries."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    digest: str

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=test", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


APP_PORT = 8080
# The sample app: busybox httpd serving /version, a JSON document written at build time from the committed VERSION
# file and the REVISION build argument (the git commit; `bake` passes it). sh stays PID 1 and stops httpd on
# SIGTERM, so pods stop at once (a PID 1 without a handler ignores SIGTERM and waits out the grace period).
APP_DOCKERFILE = """FROM {base}
ARG REVISION=unknown
COPY VERSION app.sh /app/
RUN mkdir -p /app/www \\
 && printf '{{"version": "%s", "commit": "%s"}}\\n' "$(cat /app/VERSION)" "$REVISION" > /app/www/version
USER 65532:65532
EXPOSE {port}
CMD ["/bin/sh", "/app/app.sh"]
"""
APP_SCRIPT = """#!/bin/sh
echo "hello from $(cat /app/VERSION), serving /version on :{port}"
httpd -f -p {port} -h /app/www &
trap 'kill $!; exit 0' TERM INT
wait
"""
CRASH_SCRIPT = """#!/bin/sh
echo "$(cat /app/VERSION): cannot start (exit 3)"
exit 3
"""


def make_app_repo(
    path: Path, base_image: str, versions: list[str], *, crashing: tuple[str, ...] = ()
) -> dict[str, str]:
    """A git repository with the sample app; one commit and tag per version (a version in `crashing` exits at
    start). Returns version -> commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commits: dict[str, str] = {}
    for version in versions:
        (path / "Dockerfile").write_text(APP_DOCKERFILE.format(base=base_image, port=APP_PORT))
        (path / "VERSION").write_text(version + "\n")
        (path / "app.sh").write_text((CRASH_SCRIPT if version in crashing else APP_SCRIPT).format(port=APP_PORT))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"release {version}")
        git(path, "tag", version)
        commits[version] = git(path, "rev-parse", "HEAD")
    return commits


def build_and_push(
    context: Path,
    repository: str,
    tag: str,
    *,
    labels: dict[str, str] | None = None,
    auth: dict[str, str] | None = None,
    git_ref: str | None = None,
    build_args: dict[str, str] | None = None,
) -> Pushed:
    """docker build (at a git ref, checked out first) and push; returns the digest the registry reports."""
    if git_ref:
        git(context, "checkout", "-q", git_ref)
    engine = docker.from_env()
    engine.images.build(
        path=str(context), tag=f"{repository}:{tag}", labels=labels or {}, buildargs=build_args or {}, rm=True
    )
    digest = ""
    for line in engine.images.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {repository}:{tag} failed: {line['error']}")
        aux = line.get("aux") or {}
        digest = aux.get("Digest", digest)
    if not digest:
        raise RuntimeError(f"push of {repository}:{tag} reported no digest")
    return Pushed(repository, tag, digest)


def bake(
    app: tuple[Path, dict[str, str]],
    repository: str,
    version: str,
    *,
    label_version: str | None = None,
    tag: str | None = None,
    auth: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> Pushed:
    """Build the app repository at the git tag `version`, with its provenance labels, and push it."""
    path, commits = app
    labels = {
        "org.opencontainers.image.version": label_version or version,
        "org.opencontainers.image.revision": commits[version],
        **(extra_labels or {}),
    }
    return build_and_push(
        path,
        repository,
        tag or version,
        labels=labels,
        auth=auth,
        git_ref=version,
        build_args={"REVISION": commits[version]},
    )


def skopeo_digest(
    reference: str, *, creds: str | None = None, cert_dir: str | None = None, tls_verify: bool = True
) -> str:
    """The digest skopeo reports: an independent check of what our registry client resolves."""
    args = ["skopeo", "inspect", "--format", "{{.Digest}}"]
    if creds:
        args += ["--creds", creds]
    if cert_dir:
        args += ["--cert-dir", cert_dir]
    args += [f"--tls-verify={'true' if tls_verify else 'false'}", f"docker://{reference}"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo inspect {reference} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def skopeo_labels(reference: str, *, tls_verify: bool = False) -> dict[str, str]:
    result = subprocess.run(
        ["skopeo", "inspect", f"--tls-verify={'true' if tls_verify else 'false'}", f"docker://{reference}"],
        capture_output=True,
        text=True,
        check=True,
    )
    labels: dict[str, str] = json.loads(result.stdout).get("Labels") or {}
    return labels


def push_local(engine: docker.DockerClient, image: str, repository: str, tag: str) -> Pushed:
    """Push an image of the engine (e.g. the one `make image` built) to a registry as repository:tag."""
    engine.images.get(image).tag(repository, tag)
    digest = ""
    for line in engine.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {repository}:{tag} failed: {line['error']}")
        digest = (line.get("aux") or {}).get("Digest", digest)
    if not digest:
        raise RuntimeError(f"push of {repository}:{tag} reported no digest")
    return Pushed(repository, tag, digest)
