"""The one rule for foreign text (from a cluster, a registry, an image, git) shown to people.

Used by the operator for what it copies into status and Events, and by the CLI for everything it prints, so a
value is judged the same way on both sides and escaping twice changes nothing.

A character is shown as an escape, never passed on, when it is invisible or changes how other text is shown:
- control characters (Unicode Cc: C0, DEL, C1 with the 8-bit CSI): terminal sequences move the cursor,
  retitle the window, forge hyperlinks (OSC 8) or hide text;
- line breaks of every kind (`\\n`, `\\r`, U+2028/U+2029, and the rest `str.splitlines` breaks on): one
  logical line per field, so an Event message cannot print a fake table row;
- format characters (Unicode Cf): bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069), the
  direction marks (U+200E/F, U+061C), zero-width characters (U+200B-200D, U+2060, U+FEFF), the soft hyphen and
  tag characters: the "Trojan Source" family (CVE-2021-42574), text that reads differently than it is;
- lone surrogates (Cs), which a JSON `\\ud800` escape can carry and no terminal can show.

Escapes look like Python's (`\\n`, `\\x1b`, `\\u202e`, `\\U000e0041`), so a reader can tell what was there.
Backslashes are left alone: the output of `inert` is printable ASCII where it changed anything, so sanitising
a message that already holds sanitised values changes nothing more (no `\\\\x1b`). Rich markup is not this
module's business: the CLI escapes it on top (`apprelease.cli.text.safe`).
"""

from __future__ import annotations

import re
import unicodedata

_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Everything outside printable ASCII is a candidate; unicodedata then decides (ordinary text stays readable).
_CANDIDATE = re.compile(r"[^\x20-\x7e]")
_CANDIDATE_IN_BLOCK = re.compile(r"[^\x20-\x7e\n\t]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHOWN:
        return _SHOWN[char]
    if unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def inert(value: object) -> str:
    """`value` as one line of text with every control, line-breaking and invisible character shown escaped.

    None is "". Idempotent: inert(inert(x)) == inert(x).
    """
    text = "" if value is None else str(value)
    return _CANDIDATE.sub(_escape, text)


def inert_block(value: object) -> str:
    """As `inert`, but newlines and tabs stay: for a block whose lines are its meaning (a diff, a build log)."""
    text = "" if value is None else str(value)
    return _CANDIDATE_IN_BLOCK.sub(_escape, text)
