"""Who owns a field, from the API server's managedFields: who else sets an AppRelease's spec.version (a GitOps
tool re-applies it), and who last wrote a container's image in a workload's pod template (drift).

A rollback patched into the live object is undone by the next sync of whoever applies the manifest; the CLI
warns about that instead of letting a rollback silently evaporate. A pinned image changed by someone else is
put back by the operator, and the Event names who changed it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from apprelease.core.fields import Fields, objects

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


def image_managers(managed_fields: object, template_path: Sequence[str], container: str, init: bool) -> list[str]:
    """The field managers that own a container's image in a workload's pod template (an Update moves ownership
    to its manager; Appliers of the same value share it). `template_path` leads from the object to the pod
    template (e.g. spec, template); `init`: the container is in initContainers."""
    key = "k:" + json.dumps({"name": container}, separators=(",", ":"))
    path = [f"f:{part}" for part in template_path] + ["f:spec", "f:initContainers" if init else "f:containers", key]
    owners: list[str] = []
    for entry in objects(managed_fields):
        node: Fields = entry.sub("fieldsV1")
        for part in path:
            node = node.sub(part)
        if "f:image" in node and entry.text("manager") not in owners:
            owners.append(entry.text("manager"))
    return owners
