"""The demo's narration: a rule per step, and each command printed before it runs (shared by its parts)."""

from __future__ import annotations

import subprocess
import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 140)


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def sh(*args: str, **kwargs: object) -> str:
    """Run a command, printed first; its stdout, or the demo stops with its stderr."""
    console.print(f"[dim]$ {' '.join(args)}[/]", highlight=False)
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        console.print(result.stderr)
        raise SystemExit(f"demo step failed: {' '.join(args)}")
    return str(result.stdout)
