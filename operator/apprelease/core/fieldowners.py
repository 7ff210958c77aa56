"""Who else owns an AppRelease's spec.version (server-side apply managedFields): a GitOps tool re-applies it.

A rollback patched into the live object is undone by the next sync of whoever applies the manifest; the CLI
warns about that instead of letting a rollback silently evaporate.
"""

from __future__ import annotations

from typing import Any

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


def spec_version_owners(managed_fields: list[dict[str, Any]] | None) -> list[str]:
    """Managers, other than ours, that will set spec.version again the next time they sync."""
    owners: list[str] = []
    for entry in managed_fields or []:
        manager = str(entry.get("manager") or "")
        if manager in (OPERATOR_MANAGER, CLI_MANAGER) or manager in owners:
            continue
        fields = entry.get("fieldsV1") or {}
        if "f:version" not in ((fields.get("f:spec") or {}) if isinstance(fields, dict) else {}):
            continue
        if entry.get("operation") == "Apply" or manager.startswith(_SYNCING_TOOLS):
            owners.append(manager)
    return owners
