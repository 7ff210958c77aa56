"""`apprelease build`: docker build of a git tag with OCI provenance labels, tag by version and commit, push."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker

from apprelease.cli.engine import ENGINE_FAILURES
from apprelease.cli.gitinfo import GitState
from apprelease.core.api import LABEL_REVISION, LABEL_VERSION
from apprelease.core.fields import Fields

LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_CREATED = "org.opencontainers.image.created"


class BakeError(RuntimeError):
    """Building or pushing failed; the message is one line for the user."""


@dataclass(frozen=True)
class BakePlan:
    context: Path
    dockerfile: str
    image: str  # repository
    version: str
    git: GitState
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)

    @property
    def tags(self) -> list[str]:
        return [self.version, self.git.short_commit]

    def labels(self, created: str) -> dict[str, str]:
        labels = {
            LABEL_VERSION: self.version,
            LABEL_REVISION: self.git.commit,
            LABEL_CREATED: created,
            **self.extra_labels,
        }
        if self.git.source:
            labels[LABEL_SOURCE] = self.git.source
        return labels


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Progress = Callable[[str], None]


def build(plan: BakePlan, on_line: Progress, api: docker.APIClient) -> str:
    """Build and tag the image with the engine ``api``; returns the local image id. Raises BakeError."""
    first = f"{plan.image}:{plan.version}"
    image_id = ""
    try:
        stream = api.build(
            path=str(plan.context),
            dockerfile=plan.dockerfile,
            tag=first,
            labels=plan.labels(now_rfc3339()),
            buildargs=plan.build_args or None,
            target=plan.target,
            rm=True,
            forcerm=True,
            decode=True,
        )
        image_id = _follow_build(stream, on_line)
        for tag in plan.tags[1:]:
            api.tag(first, plan.image, tag)
    except ENGINE_FAILURES as err:
        raise BakeError(f"docker build failed: {_one_line(err)}") from None
    return image_id


def _follow_build(stream: Iterable[Mapping[str, object]], on_line: Progress) -> str:
    """The image ID a build stream (the engine's decoded JSON messages) ends with; BakeError on an error message."""
    image_id = ""
    for chunk in stream:
        if "error" in chunk:
            raise BakeError(f"docker build failed: {_one_line(chunk['error'])}")
        text = str(chunk.get("stream", "")).rstrip()
        if text:
            on_line(text)
        image_id = Fields(chunk).sub("aux").text("ID", image_id)
    if not image_id:
        raise BakeError("docker build finished without an image")
    return image_id


PushProgress = Callable[[str, str, int, int], None]  # layer, status, current, total


def push(plan: BakePlan, on_progress: PushProgress, api: docker.APIClient) -> str:
    """Push every tag with the engine ``api``; returns the digest the registry reported for the version tag.
    Raises BakeError."""
    digests: dict[str, str] = {}
    try:
        for tag in plan.tags:
            for chunk in api.push(plan.image, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise BakeError(f"push of {plan.image}:{tag} failed: {_one_line(chunk['error'])}")
                detail = chunk.get("progressDetail") or {}
                if chunk.get("id") and chunk.get("status"):
                    on_progress(
                        str(chunk["id"]),
                        str(chunk["status"]),
                        int(detail.get("current", 0) or 0),
                        int(detail.get("total", 0) or 0),
                    )
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    digests[tag] = str(aux["Digest"])
    except ENGINE_FAILURES as err:
        raise BakeError(f"push failed: {_one_line(err)}") from None
    if plan.version not in digests:
        raise BakeError(f"push of {plan.image}:{plan.version} reported no digest")
    return digests[plan.version]


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
