"""Sharding a large fleet over several operator Deployments, each with its own Lease (issue 19): pure rules
that turn a shard setting into the API server's selectors and the shard's Lease name.

Two ways, one per operator Deployment:
- a shard label: the operator watches only AppReleases labelled `apprelease.dev/shard=<name>` (a label selector,
  filtered by the API server; label every AppRelease of a namespace alike to shard by namespace). Workloads
  need no label: a workload event only wakes AppReleases this shard's index holds.
- a hash range: `shardRange(object.metadata.namespace, '0x…', '0x…')` on every watched resource, the API
  server's sharded list and watch (alpha, feature gate ShardedListAndWatch; 64-bit FNV-1a of the namespace,
  start inclusive, end exclusive), passed to kopf's `settings.watching.shard_selectors`.
"""

from __future__ import annotations

import re

LABEL_SHARD = "apprelease.dev/shard"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")  # a Kubernetes label value
_HEX = re.compile(r"^0x[0-9a-fA-F]{1,17}$")
_TOP = 1 << 64


def check_shard(shard: str) -> str:
    """`shard` as a label value; ValueError when it is not one (63 characters, alphanumerics, '-', '_', '.')."""
    if not _LABEL_VALUE.match(shard):
        raise ValueError(f"shard {shard!r} is not a label value (up to 63 of A-Z a-z 0-9 - _ ., alphanumeric ends)")
    return shard


def label_selector(shard: str) -> str:
    """The AppRelease label selector of a shard, e.g. `apprelease.dev/shard=a`."""
    return f"{LABEL_SHARD}={check_shard(shard)}"


def parse_range(text: str) -> tuple[int, int]:
    """`0xSTART-0xEND` (hex, 64-bit, END may be 0x10000000000000000) -> (start, end); ValueError when malformed,
    empty or out of range."""
    start_text, sep, end_text = text.strip().partition("-")
    if not sep or not _HEX.match(start_text) or not _HEX.match(end_text):
        raise ValueError(f"shard range {text!r} is not 0xSTART-0xEND")
    start, end = int(start_text, 16), int(end_text, 16)
    if not 0 <= start < end <= _TOP:
        raise ValueError(f"shard range {text!r} must have 0 <= start < end <= 0x10000000000000000")
    return start, end


def range_selector(text: str) -> str:
    """The API server's shard selector over namespaces for a range (see `parse_range`)."""
    start, end = parse_range(text)
    return f"shardRange(object.metadata.namespace, '0x{start:016x}', '0x{end:016x}')"


def split(count: int) -> list[str]:
    """`count` ranges that cover the 64-bit hash space with no gap and no overlap, as `0xSTART-0xEND`."""
    if count < 1:
        raise ValueError("a fleet has at least one shard")
    bounds = [_TOP * i // count for i in range(count + 1)]
    return [f"0x{bounds[i]:016x}-0x{bounds[i + 1]:016x}" for i in range(count)]


def balanced(namespaces: list[str], count: int) -> list[str]:
    """`count` ranges like `split`'s (the whole hash space, no gap, no overlap) whose bounds fall between the
    sorted hashes of `namespaces`, so that each shard gets an equal share of them (within one). Why: FNV-1a of
    similar names (team-01, team-02, ...) clusters in a small part of the space, where `split` would hand
    every one of them to a single shard. A namespace not listed still falls in exactly one range."""
    if count < 1:
        raise ValueError("a fleet has at least one shard")
    hashes = sorted({fnv1a64(namespace) for namespace in namespaces})
    inner = [hashes[len(hashes) * i // count] for i in range(1, count)] if len(hashes) >= count else []
    bounds = [0, *inner, _TOP] if inner else [_TOP * i // count for i in range(count + 1)]
    return [f"0x{bounds[i]:016x}-0x{bounds[i + 1]:016x}" for i in range(count)]


def lease_name(base: str, shard: str | None, shard_range: str | None) -> str:
    """One Lease per shard: the base name, suffixed by the shard label value or the range's start."""
    if shard:
        return f"{base}-{check_shard(shard)}"[:253]
    if shard_range:
        return f"{base}-{parse_range(shard_range)[0]:016x}"[:253]
    return base


def fnv1a64(text: str) -> int:
    """64-bit FNV-1a, the hash the API server's shardRange reads (for tests and for choosing ranges)."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value ^= byte
        value = (value * 0x100000001B3) % _TOP
    return value
