"""Whether a workload's owner consented to an AppRelease pinning it: by name, or by name and uid.

The operator holds patch rights on every workload; an AppRelease only borrows them for workloads whose owner
said so. The name form, the label `apprelease.dev/release: <name>`, can be written before the AppRelease exists
(GitOps applies the Deployment first), but it names whoever creates an AppRelease of that name in the namespace
first, and again after a deletion. The uid form adds the annotation `apprelease.dev/release-uid: <uid>` (written
by `apprelease optin` once the AppRelease exists): a namesake created later has another uid and is refused.

- A workload that carries the uid annotation is held to it whatever the operator's setting: the owner asked.
- With the operator setting `requireUidBinding` (APPRELEASE_REQUIRE_UID_BINDING) the annotation is required.
Uids are compared in full (they are the API server's, a UUID); a foreign value is quoted inert in the message.
"""

from __future__ import annotations

from collections.abc import Mapping

from apprelease.core import limits
from apprelease.core.api import LABEL_RELEASE

ANNOTATION_RELEASE_UID = "apprelease.dev/release-uid"


def optin_command(kind: str, name: str, release: str, namespace: str) -> str:
    """The CLI command the workload's owner runs to opt it in (name and, once the AppRelease exists, uid)."""
    return f"apprelease optin {kind.lower()}/{name} --release {release} -n {namespace}"


def refusal(meta: Mapping[str, object], kind: str, release: str, uid: str | None, *, require_uid: bool) -> str | None:
    """Why the workload (its metadata) is not opted in to AppRelease `release` with `uid`; None when it is.

    `uid` None (not known) skips the uid checks. The message names what the workload says and how its owner
    opts it in; nothing is changed until then.
    """
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"))
    name, namespace = str(meta.get("name") or "?"), str(meta.get("namespace") or "")
    opt_in = optin_command(kind, name, release, namespace)
    label = labels.get(LABEL_RELEASE)
    if label != release:
        now = f"it is labelled for AppRelease {limits.quoted(label)}" if label else "it has no such label"
        return (
            f"{kind} {name} is not opted in to AppRelease {release}: {now}. Its owner opts it in with `{opt_in}` "
            f"(or `kubectl label {kind.lower()} {name} -n {namespace} {LABEL_RELEASE}={release} --overwrite`); "
            "nothing is changed until then"
        )
    if uid is None:
        return None
    bound = annotations.get(ANNOTATION_RELEASE_UID)
    if bound is not None and bound != uid:
        return (
            f"{kind} {name} is bound to the AppRelease with uid {limits.quoted(bound)}, and this one is {uid}: "
            f"an AppRelease named {release} was deleted and created again since its owner opted in. Its owner "
            f"re-binds it with `{opt_in}`; nothing is changed until then"
        )
    if bound is None and require_uid:
        return (
            f"{kind} {name} is opted in to AppRelease {release} by name only, and the operator requires the uid "
            f"binding (requireUidBinding). Its owner binds it with `{opt_in}` (or `kubectl annotate "
            f"{kind.lower()} {name} -n {namespace} {ANNOTATION_RELEASE_UID}={uid}`); nothing is changed until then"
        )
    return None


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}
