"""Text from a cluster, a registry or git is hostile: it reaches the terminal only as inert characters.

Two dangers: rich markup (`[/]` crashes a print, `[link=…]` forges a hyperlink) and characters that act instead
of showing: terminal control sequences, line breaks that forge table rows, bidi and zero-width characters that
make text read differently than it is. The second is the core's one rule (`apprelease.core.text`, which the
operator applies to what it writes into status too); this module adds markup escaping for the CLI.
"""

from __future__ import annotations

from rich.markup import escape

from apprelease.core.text import inert, inert_block


def plain(value: object) -> str:
    """The value as one line of text, every control, line-breaking and invisible character shown escaped."""
    return inert(value)


def plain_block(value: object) -> str:
    """As `plain`, keeping newlines and tabs: for a block whose lines are its meaning (a diff)."""
    return inert_block(value)


def safe(value: object) -> str:
    """The value ready to embed in rich markup: inert characters on one line, escaped markup."""
    return escape(inert(value))
