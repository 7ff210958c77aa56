"""Text from a cluster, a registry or git is hostile: it reaches the terminal only as inert characters.

Two dangers: rich markup (`[/]` crashes a print, `[link=…]` forges a hyperlink) and terminal control
sequences (ESC, CSI, OSC can move the cursor, retitle the window or hide text). Control characters are shown
as visible `\\xNN` escapes instead of being dropped, so a user can still see that something odd was there.
"""

from __future__ import annotations

import re

from rich.markup import escape

# C0 controls except tab and newline, DEL, and C1 controls (U+0080-U+009F: 8-bit CSI among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: object) -> str:
    """The value as text with every control character made visible and inert."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe(value: object) -> str:
    """The value ready to embed in rich markup: inert control characters, escaped markup."""
    return escape(plain(value))
