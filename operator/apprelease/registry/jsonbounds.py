"""JSON from untrusted sources, bounded in size, nesting and item count before ``json.loads`` runs.

``json.loads`` of a few MiB of ``[[],[],...]`` builds millions of objects (hundreds of MiB), and deep
nesting raises ``RecursionError``. A cheap scan over the bytes (string bodies removed, so brackets inside
strings do not count) rejects such documents first; whatever still fails to parse becomes a ValueError.
"""

from __future__ import annotations

import json
import re

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "check", "load"]

MAX_DEPTH = 32
# Containers plus separators: a manifest with 1,000 layers or an image config with 1,000 history entries
# stays far below; the memory a document can cost is then a small multiple of its size.
MAX_ITEMS = 200_000

# Possessive, and an unterminated string runs to the end: one left-to-right pass, no backtracking blow-up.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def load(
    content: bytes | bytearray | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS
) -> object:
    """Parse JSON text or raise ValueError (never RecursionError, never a huge allocation). The value is
    whatever the text holds (dict, list, str, int, float, bool or None): callers narrow it or validate it
    with a model."""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    check(raw, max_bytes=max_bytes, max_depth=max_depth, max_items=max_items)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        # ValueError covers JSONDecodeError, whose .doc holds the whole text: never chain it.
        raise ValueError("not valid JSON") from None


def check(raw: bytes | bytearray, *, max_bytes: int, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
    """ValueError when JSON text is over the size, item or depth bounds (whether it parses is not checked:
    callers that parse elsewhere, e.g. pydantic straight from the text, use this first)."""
    if len(raw) > max_bytes:
        raise ValueError(f"JSON document larger than {max_bytes} bytes")
    structure = _STRING.sub(b'""', raw)
    items = structure.count(b"[") + structure.count(b"{") + structure.count(b",")
    if items > max_items:
        raise ValueError(f"JSON document with more than {max_items} items")
    brackets = structure.translate(_BRACKETS_ONLY, _NOT_BRACKETS)
    # Each pass removes the innermost pairs; brackets still left after max_depth passes nest deeper. (When a
    # pass removes nothing the brackets are unbalanced: json.loads below refuses that, cheaply.)
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    else:
        if brackets.replace(b"[]", b"") != brackets:
            raise ValueError(f"JSON document nested deeper than {max_depth} levels")
