"""Where a file named on the command line really is: inside the git repository the user pointed at, or refused.

A manifest repository is written by many hands. A symlink committed in it (`deploy/web.yaml -> ~/.bashrc`, or a
linked folder) would lead an edit to a file the user never named; git itself refuses to add a path beyond a
symbolic link for the same reason. So the repository is found along the path as the user wrote it (a folder that
is itself a link does not count: its target is someone else's), and the file, every link followed, must be inside
that repository. Links inside the repository stay allowed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class OutsideRepository(ValueError):
    """The path resolves outside its git repository; the message names both."""


def resolve_inside_repository(path: Path) -> Path:
    """The real path of `path` (links followed), checked to be inside the git work tree that holds it.

    The repository is the nearest folder along the written path that has a `.git` and is not a link; else the
    work tree git finds for the folder the file is in. A file in no repository at all is returned resolved: there
    is nothing to escape from (`--commit` refuses it later). Raises OutsideRepository.
    """
    written = Path(os.path.abspath(path))
    real = Path(os.path.realpath(written))
    root = _repository_along(written) or _work_tree(Path(os.path.realpath(written.parent)))
    if root is None:
        return real
    real_root = Path(os.path.realpath(root))
    if real != real_root and real_root not in real.parents:
        raise OutsideRepository(
            f"{path} resolves to {real}, outside the git repository {root}: edit the file there, by hand"
        )
    return real


def _repository_along(written: Path) -> Path | None:
    for folder in written.parents:
        if folder.is_symlink():
            continue
        if os.path.lexists(folder / ".git"):
            return folder
    return None


def _work_tree(folder: Path) -> Path | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True, check=False
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    top = result.stdout.strip()
    return Path(top) if result.returncode == 0 and top else None
