"""A typed, read-only view of one JSON object from the API server (a workload, a pod, an AppRelease).

Objects arrive as kopf bodies or sanitized kubernetes-client responses: JSON whose shape nothing guarantees
(another controller, an old API version or a hostile tenant may have written it). Reading them through this view
instead of digging with `.get(...) or {}` gives typed values, no KeyError and no TypeError: a field that is absent
or of another type reads as the default. The kubernetes client's models would also type them, but kopf hands
over dicts and the models do not validate field types either.
"""

from __future__ import annotations

from collections.abc import Mapping


class Fields:
    """Read-only access to a JSON object; `Fields(anything_else)` is an empty object."""

    __slots__ = ("_data",)

    def __init__(self, data: object) -> None:
        self._data: Mapping[str, object] = data if isinstance(data, Mapping) else {}

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def value(self, key: str, default: object = None) -> object:
        """The value at `key` as it is (for printing), or `default` when absent."""
        return self._data.get(key, default)

    def sub(self, key: str) -> Fields:
        """The nested object at `key` (empty when absent or not an object)."""
        return Fields(self._data.get(key))

    def num(self, key: str, default: int = 0) -> int:
        """The integer at `key`; `default` when absent or not an integer (booleans are not integers)."""
        value = self._data.get(key, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def text(self, key: str, default: str = "") -> str:
        """The string at `key`; `default` when absent or not a string."""
        value = self._data.get(key)
        return value if isinstance(value, str) else default

    def items(self, key: str) -> list[Fields]:
        """The list at `key` as objects (empty when absent or not a list)."""
        return objects(self._data.get(key))

    def strings(self, key: str) -> dict[str, str]:
        """The string-to-string map at `key` (labels, annotations, matchLabels); other entries are left out."""
        value = self._data.get(key)
        if not isinstance(value, Mapping):
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, str)}

    def texts(self, key: str) -> list[str]:
        """The strings of the list at `key` (other items are left out)."""
        value = self._data.get(key)
        return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def objects(value: object) -> list[Fields]:
    """A JSON list of objects (e.g. metadata.managedFields) as views; anything but a list reads as empty."""
    return [Fields(item) for item in value] if isinstance(value, list) else []
