"""Which registry credential an AppRelease uses: its own imagePullSecrets, else those its Pods would use."""

from __future__ import annotations

import logging
from typing import Any

from apprelease.controller.cluster import Cluster
from apprelease.core import reference
from apprelease.core.api import AppReleaseSpec
from apprelease.registry import Credential, lookup, parse_docker_config

log = logging.getLogger(__name__)


def secret_names(spec: AppReleaseSpec, pod_specs: list[dict[str, Any]], cluster: Cluster, namespace: str) -> list[str]:
    """spec.imagePullSecrets when given; otherwise the pod templates' and their ServiceAccounts', in order."""
    if spec.image_pull_secrets:
        return [ref.name for ref in spec.image_pull_secrets]
    names: list[str] = []
    for pod in pod_specs:
        names += [ref.get("name", "") for ref in pod.get("imagePullSecrets") or []]
        account = pod.get("serviceAccountName") or "default"
        names += cluster.get_service_account_pull_secrets(namespace, account)
    return list(dict.fromkeys(n for n in names if n))


def find_credential(cluster: Cluster, namespace: str, image: str, secrets: list[str]) -> Credential | None:
    """The first credential for the image's registry among the secrets; unreadable ones are skipped."""
    domain = reference.parse(image).domain
    for secret in secrets:
        raw = cluster.get_docker_config(namespace, secret)
        if raw is None:
            continue
        try:
            found = lookup(parse_docker_config(raw), domain)
        except ValueError as err:
            log.warning("imagePullSecret %s/%s: %s", namespace, secret, err)
            continue
        if found is not None:
            return found
    return None
