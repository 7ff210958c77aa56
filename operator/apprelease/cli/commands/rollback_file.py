"""`apprelease rollback --file`: the GitOps rollback, an edit (and a commit) of the manifest the sync applies."""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

from apprelease.cli.app import err, fail, out
from apprelease.cli.checkout import OutsideRepository, resolve_inside_repository
from apprelease.cli.gitinfo import GitError, commit_file, prepare_commit
from apprelease.cli.manifest_edit import ManifestEditError, set_version, unified_diff
from apprelease.cli.text import plain, plain_block, safe
from apprelease.core import reference
from apprelease.core.api import AppRelease, HistoryEntry

MAX_MANIFEST = 4 * 1024 * 1024  # bytes: far above any hand-written manifest, far below trouble
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label), RFC 3339 timestamps.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")


def rollback_in_file(
    path: Path, commit: bool, namespace: str, current: AppRelease, entry: HistoryEntry, promoted_from: str | None = None
) -> None:
    """The GitOps rollback: the manifest gets the recorded version and digest; the sync deploys it. With
    `promoted_from` (`ns/name`), `entry` is the upstream's and the commit says it is a promotion."""
    # The history comes from the cluster: only a real tag and digest may go into a file and a commit message.
    if not reference.is_valid_tag(entry.version) or not _DIGEST.fullmatch(entry.digest):
        fail(f"revision {entry.revision} records {entry.version!r} / {entry.digest!r}: not a tag and a digest")
    try:
        real = resolve_inside_repository(path)
        text = _read(real)
        if commit:
            prepare_commit(real)
        edit = set_version(text, name=current.name, namespace=namespace, version=entry.version, digest=entry.digest)
        message = commit_message(namespace, current.name, edit.previous_version, entry, promoted_from)
    except (OSError, UnicodeDecodeError, GitError, ManifestEditError, OutsideRepository) as problem:
        fail(f"{path}: {problem}")
    if not edit.changed(text):
        out.print(
            plain(f"{path}: {current.name} is already at {entry.version} ({entry.digest}); nothing to change"),
            markup=False,
            highlight=False,
        )
        return
    real.write_bytes(edit.text.encode("utf-8"))
    sys.stdout.write(plain_block(unified_diff(text, edit.text, str(path))))
    sys.stdout.flush()
    if not commit:
        err.print(f"[green]edited[/] {safe(path)}: commit it; the GitOps sync then deploys {entry.version}")
        return
    try:
        sha = commit_file(real, message)
    except GitError as problem:
        fail(f"{path} is edited but not committed: {problem}")
    out.print(plain(f"committed {sha[:12]}: {message.splitlines()[0]}"), markup=False, highlight=False)


def _read(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(MAX_MANIFEST + 1)
    if len(data) > MAX_MANIFEST:
        raise ManifestEditError(f"larger than {MAX_MANIFEST // (1024 * 1024)} MiB: not a manifest to edit")
    return data.decode("utf-8")


def commit_message(
    namespace: str, name: str, previous: str | None, entry: HistoryEntry, promoted_from: str | None = None
) -> str:
    """The rollback commit's message, every value in it checked to be what it says it is.

    The values come from the cluster (history) and from the file (the previous version): a newline in one of them
    would let it add lines, `Signed-off-by:` or `Reviewed-by:` trailers among them, under the user's name.
    Raises ManifestEditError naming the value.
    """
    checks = {
        "namespace": (namespace, _NAMESPACE.fullmatch(namespace) is not None, "a namespace"),
        "name": (name, len(name) <= 253 and _NAME.fullmatch(name) is not None, "an object name"),
        "spec.version in the file": (previous, previous is None or reference.is_valid_tag(previous), "a tag"),
        "the recorded version": (entry.version, reference.is_valid_tag(entry.version), "a tag"),
        "the recorded digest": (entry.digest, _DIGEST.fullmatch(entry.digest) is not None, "a digest"),
        "the revision": (entry.revision, isinstance(entry.revision, int) and entry.revision > 0, "a revision number"),
        "deployedAt": (entry.deployed_at, entry.deployed_at is None or _is_timestamp(entry.deployed_at), "a date"),
        "the upstream": (promoted_from, promoted_from is None or _is_source(promoted_from), "namespace/name"),
    }
    for what, (value, valid, claim) in checks.items():
        if not valid:
            raise ManifestEditError(f"{what} {plain(repr(value))[:100]} is not {claim}: refusing to write it")
    if promoted_from is not None:
        subject = f"Promote AppRelease {namespace}/{name} to {entry.version} from {promoted_from}"
        body = (
            f"spec.version {previous} -> {entry.version}\n"
            f"spec.digest {entry.digest}, Succeeded in {promoted_from}#{entry.revision}.\n\n"
            "Written by apprelease promote --file --commit."
        )
        return f"{subject}\n\n{body}"
    subject = f"Roll back AppRelease {namespace}/{name} to {entry.version} (revision {entry.revision})"
    body = (
        f"spec.version {previous} -> {entry.version}\n"
        f"spec.digest {entry.digest}, recorded in revision {entry.revision}"
        + (f" (deployed {entry.deployed_at})" if entry.deployed_at else "")
        + ".\nThe operator redeploys this digest from its history, without asking the registry.\n\n"
        "Written by apprelease rollback --file --commit."
    )
    return f"{subject}\n\n{body}"


def _is_source(value: str) -> bool:
    namespace, _, name = value.partition("/")
    return _NAMESPACE.fullmatch(namespace) is not None and len(name) <= 253 and _NAME.fullmatch(name) is not None


def _is_timestamp(value: str) -> bool:
    if not _TIMESTAMP.fullmatch(value):
        return False
    try:
        dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
