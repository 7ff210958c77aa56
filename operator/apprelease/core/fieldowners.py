"""Who else owns an AppRelease's spec.version (server-side apply managedFields): a GitOps tool re-applies it.

A rollback patched into the live object is undone by the next sync of whoever applies the manifest; the CLI
warns about that instead of letting a rollback silently evaporate.
"""

from __future__ import annotations

from apprelease.core.fields import objects

# Our own field managers: the operator (never writes spec) and the CLI (`apprelease rollback`).
OPERATOR_MANAGER = "apprelease"
CLI_MANAGER = "apprelease-cli"

# Tools that re-apply manifests with an Update (client-side apply, Helm) rather than an Apply; any Apply by a
# manager other than ours counts as well.
_SYNCING_TOOLS = (
    "kustomize-controller",
    "helm-controller",
    "helm",
    "argocd",
    "flux",
    "kapp",
    "fleet",
    "kubectl-client-side-apply",
)


def spec_version_owners(managed_fields: object) -> list[str]:
    """Managers, other than ours, that will set spec.version again the next time they sync.

    `managed_fields` is metadata.managedFields as the API server returned it (a list of objects; anything else
    reads as none).
    """
    owners: list[str] = []
    for entry in objects(managed_fields):
        manager = entry.text("manager")
        if manager in (OPERATOR_MANAGER, CLI_MANAGER) or manager in owners:
            continue
        if "f:version" not in entry.sub("fieldsV1").sub("f:spec"):
            continue
        if entry.text("operation") == "Apply" or manager.startswith(_SYNCING_TOOLS):
            owners.append(manager)
    return owners
