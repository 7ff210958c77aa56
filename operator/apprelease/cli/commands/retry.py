"""`apprelease retry`: try a failed version once more."""

from __future__ import annotations

import datetime as dt

from apprelease.cli import app as shared
from apprelease.cli.app import ContextOption, KubeconfigOption, NameArgument, NamespaceOption, fail, out
from apprelease.cli.kube import KubeError
from apprelease.cli.text import safe
from apprelease.core.api import ANNOTATION_RETRY


def retry(
    name: str = NameArgument,
    namespace: str | None = NamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Try a failed version once more (after RolledBack or RolloutFailed): sets apprelease.dev/retry to now."""
    releases = shared.releases(kubeconfig, context, namespace)
    token = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        current = releases.get(name)
        releases.annotate(name, {ANNOTATION_RETRY: token})
    except KubeError as problem:
        fail(str(problem))
    out.print(
        f"{safe(releases.namespace)}/{safe(name)}: retrying {safe(current.spec.version)} ({ANNOTATION_RETRY}={token})"
    )
