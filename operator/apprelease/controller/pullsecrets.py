"""Which registry credentials an AppRelease uses: its own imagePullSecrets, else those its Pods would use,
chosen and tried as the kubelet chooses and tries them."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from apprelease.controller.cluster import Cluster
from apprelease.core.reference import Reference
from apprelease.core.spec import ReleaseSpec
from apprelease.registry import Credential, RegistryClient, Resolved, Unauthorized
from apprelease.registry.credentials import Keyring

log = logging.getLogger(__name__)

# The kubelet tries every matching credential; a tenant's Secret could list thousands. Past this many, the
# rest are not tried (each try is a round of requests inside one resolution's deadline).
MAX_CREDENTIAL_TRIES = 8
# Each secret named is a Secret read per resolution; a tenant's pod templates and ServiceAccounts could name
# thousands. Past this many (in the kubelet's order), the rest are not read, and the cut is logged.
MAX_PULL_SECRETS = 64


def secret_names(
    spec: ReleaseSpec, pod_specs: list[Mapping[str, object]], cluster: Cluster, namespace: str
) -> list[str]:
    """spec.imagePullSecrets when given; otherwise the pod templates' and their ServiceAccounts', in order, each
    once, the first MAX_PULL_SECRETS."""
    if spec.image_pull_secrets:
        return list(spec.image_pull_secrets)[:MAX_PULL_SECRETS]
    names: list[str] = []
    for pod in pod_specs:
        refs = pod.get("imagePullSecrets")
        if isinstance(refs, list):
            names += [str(ref.get("name") or "") for ref in refs if isinstance(ref, Mapping)]
        account = pod.get("serviceAccountName")
        account = account if isinstance(account, str) and account else "default"
        names += cluster.get_service_account_pull_secrets(namespace, account)
    unique = list(dict.fromkeys(n for n in names if n))
    if len(unique) > MAX_PULL_SECRETS:
        log.warning(
            "%s: %d imagePullSecrets named by the pod templates and ServiceAccounts; only the first %d are read",
            namespace,
            len(unique),
            MAX_PULL_SECRETS,
        )
    return unique[:MAX_PULL_SECRETS]


def find_credentials(cluster: Cluster, namespace: str, image: Reference, secrets: list[str]) -> list[Credential]:
    """Every credential the kubelet would try for the image, in its order (see ``Keyring``): the secrets
    form one keyring in the order given. Missing secrets are skipped, as the kubelet skips them; malformed
    ones are skipped with a warning (the kubelet fails the pull; the message names the secret, not its
    content). Duplicates are tried once, and at most MAX_CREDENTIAL_TRIES."""
    keyring = Keyring()
    for secret in secrets:
        raw = cluster.get_docker_config(namespace, secret)
        if raw is None:
            continue
        try:
            keyring.add(raw)
        except ValueError as err:
            log.warning("imagePullSecret %s/%s: %s", namespace, secret, err)
    found = list(dict.fromkeys(keyring.lookup(image.repository)))
    return found[:MAX_CREDENTIAL_TRIES]


def resolve_as_the_kubelet(
    registry: RegistryClient, ref: Reference, credentials: list[Credential], *, max_age: float | None = None
) -> tuple[Resolved, Credential | None]:
    """Resolve with each credential in turn while the registry refuses it, as the kubelet pulls with each
    matching credential until one works ("Interpretation of config.json" in the Kubernetes docs). Anonymous
    only when no credential matches (the kubelet does not fall back to anonymous either). Returns the
    result and the credential that worked; raises the first refusal when every credential is refused."""
    if not credentials:
        return registry.resolve(ref, None, max_age=max_age), None
    first: Unauthorized | None = None
    for credential in credentials:
        try:
            return registry.resolve(ref, credential, max_age=max_age), credential
        except Unauthorized as err:
            first = first or err
    assert first is not None
    if len(credentials) > 1:
        raise Unauthorized(f"{first} ({len(credentials)} matching pull-secret credentials tried)") from None
    raise first
