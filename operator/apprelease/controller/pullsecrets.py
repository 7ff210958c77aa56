"""Which registry credential an AppRelease uses: its own imagePullSecrets, else those its Pods would use."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from apprelease.controller.cluster import Cluster
from apprelease.core.reference import Reference
from apprelease.core.spec import ReleaseSpec
from apprelease.registry import Credential, lookup, parse_docker_config

log = logging.getLogger(__name__)


def secret_names(
    spec: ReleaseSpec, pod_specs: list[Mapping[str, object]], cluster: Cluster, namespace: str
) -> list[str]:
    """spec.imagePullSecrets when given; otherwise the pod templates' and their ServiceAccounts', in order."""
    if spec.image_pull_secrets:
        return list(spec.image_pull_secrets)
    names: list[str] = []
    for pod in pod_specs:
        refs = pod.get("imagePullSecrets")
        if isinstance(refs, list):
            names += [str(ref.get("name") or "") for ref in refs if isinstance(ref, Mapping)]
        account = pod.get("serviceAccountName")
        account = account if isinstance(account, str) and account else "default"
        names += cluster.get_service_account_pull_secrets(namespace, account)
    return list(dict.fromkeys(n for n in names if n))


def find_credential(cluster: Cluster, namespace: str, image: Reference, secrets: list[str]) -> Credential | None:
    """The first credential for the image's registry among the secrets; unreadable ones are skipped."""
    domain = image.domain
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
