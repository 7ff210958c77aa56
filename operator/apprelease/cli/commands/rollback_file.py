"""`apprelease rollback --file`: the GitOps rollback, an edit (and a commit) of the manifest the sync applies."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from apprelease.cli.app import err, fail, out
from apprelease.cli.gitinfo import GitError, commit_file, prepare_commit
from apprelease.cli.manifest_edit import ManifestEditError, set_version, unified_diff
from apprelease.cli.text import plain, safe
from apprelease.core import reference
from apprelease.core.api import AppRelease, HistoryEntry

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def rollback_in_file(path: Path, commit: bool, namespace: str, current: AppRelease, entry: HistoryEntry) -> None:
    """The GitOps rollback: the manifest gets the recorded version and digest; the sync deploys it."""
    # The history comes from the cluster: only a real tag and digest may go into a file and a commit message.
    if not reference.is_valid_tag(entry.version) or not _DIGEST.fullmatch(entry.digest):
        fail(f"revision {entry.revision} records {entry.version!r} / {entry.digest!r}: not a tag and a digest")
    try:
        text = path.read_bytes().decode("utf-8")
        if commit:
            prepare_commit(path)
        edit = set_version(text, name=current.name, namespace=namespace, version=entry.version, digest=entry.digest)
    except (OSError, UnicodeDecodeError, GitError, ManifestEditError) as problem:
        fail(f"{path}: {problem}")
    if not edit.changed(text):
        out.print(
            plain(f"{path}: {current.name} is already at {entry.version} ({entry.digest}); nothing to change"),
            markup=False,
            highlight=False,
        )
        return
    path.write_bytes(edit.text.encode("utf-8"))
    sys.stdout.write(plain(unified_diff(text, edit.text, str(path))))
    sys.stdout.flush()
    if not commit:
        err.print(f"[green]edited[/] {safe(path)}: commit it; the GitOps sync then deploys {entry.version}")
        return
    _commit(path, namespace, current.name, edit.previous_version, entry)


def _commit(path: Path, namespace: str, name: str, previous: str | None, entry: HistoryEntry) -> None:
    subject = f"Roll back AppRelease {namespace}/{name} to {entry.version} (revision {entry.revision})"
    body = (
        f"spec.version {previous} -> {entry.version}\n"
        f"spec.digest {entry.digest}, recorded in revision {entry.revision}"
        + (f" (deployed {entry.deployed_at})" if entry.deployed_at else "")
        + ".\nThe operator redeploys this digest from its history, without asking the registry.\n\n"
        "Written by apprelease rollback --file --commit."
    )
    try:
        sha = commit_file(path, plain(f"{subject}\n\n{body}"))
    except GitError as problem:
        fail(f"{path} is edited but not committed: {problem}")
    out.print(plain(f"committed {sha[:12]}: {subject}"), markup=False, highlight=False)
