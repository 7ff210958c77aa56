"""Set an AppRelease's spec.version and spec.digest inside a manifest file, changing nothing else.

Under GitOps a rollback is a commit, and a reviewer must see a two-line diff: so the file is never re-dumped.
ruamel.yaml only finds where the two values are (its composer keeps exact character positions); the new values
are spliced into the original text, so comments, order, other documents, quoting and line endings stay byte for
byte what they were.

The file may come from anyone who can open a pull request, so it is read defensively before either reader
builds anything: no YAML alias anywhere (a 600-byte alias bomb expands to billions of nodes once a reader
compares or copies it), and no duplicate key as either reader sees it (YAML 1.1, Kubernetes' reading, and 1.2
disagree on `yes`/`true`): a reader that keeps the last `spec` while the editor found the first would report
a rollback that changes nothing.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from apprelease.core.api import GROUP, KIND


class ManifestEditError(ValueError):
    """The file cannot be edited safely; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class Edit:
    text: str  # the whole new file
    previous_version: str | None
    previous_digest: str | None

    def changed(self, original: str) -> bool:
        return self.text != original


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]*\Z")


def set_version(text: str, *, name: str, namespace: str | None, version: str, digest: str) -> Edit:
    """The file with AppRelease `name` (in `namespace`, or with no namespace) set to version and digest."""
    documents = _compose(text)
    spec = _spec_of(_find_release(documents, name, namespace), name)
    version_key, version_node = _entry(spec, "version", name)
    digest_entry = _entry_or_none(spec, "digest", name)
    replacements: list[tuple[int, int, str]] = []
    style = version_node.style if version_node.style in ('"', "'") else None
    replacements.append((version_node.start_mark.index, version_node.end_mark.index, _render(version, style)))
    if digest_entry is not None:
        digest_node = digest_entry[1]
        old_digest: str | None = str(digest_node.value)
        keep = digest_node.style if digest_node.style in ('"', "'") else None
        replacements.append((digest_node.start_mark.index, digest_node.end_mark.index, _render(digest, keep)))
    else:
        old_digest = None
        replacements.append(_insertion(text, spec, version_key, version_node, _render(digest, style)))
    new = text
    for start, end, value in sorted(replacements, reverse=True):
        new = new[:start] + value + new[end:]
    _check(text, new, version, digest)
    return Edit(text=new, previous_version=str(version_node.value), previous_digest=old_digest)


def unified_diff(old: str, new: str, path: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- reading -----------------------------------------------------------------------------------------------
class _StrictLoader(pyyaml.SafeLoader):
    """PyYAML's safe reading (YAML 1.1, as Kubernetes reads a manifest) that refuses a key given twice."""

    def construct_mapping(self, node: pyyaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise ManifestEditError(_duplicate(str(key_node.value), line, seen[key]))
                seen[key] = line
            except TypeError:  # an unhashable key: the base class refuses it with its own error
                break
        return super().construct_mapping(node, deep=deep)


def _duplicate(key: str, line: int, first: int) -> str:
    return f"duplicate key {key!r} on line {line} (first on line {first}): a YAML reader keeps only one of them"


def _read(text: str) -> list[object]:
    """Both readings of the file as documents, after the refusals above; ManifestEditError otherwise."""
    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            if isinstance(event, AliasEvent):
                raise ManifestEditError(
                    f"YAML alias (*{event.anchor}) on line {event.start_mark.line + 1}: rollback --file edits "
                    "only files without aliases (a reader may expand them without bound); edit it by hand"
                )
        documents = list(pyyaml.load_all(text, Loader=_StrictLoader))
        list(YAML(typ="safe", pure=True).load_all(text))  # YAML 1.2's idea of a duplicate key
    except DuplicateKeyError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        first = err.context_mark.line + 1 if err.context_mark else 0
        raise ManifestEditError(_duplicate(str(err.problem).split('"')[1], line, first)) from err
    except (YAMLError, pyyaml.YAMLError) as err:
        raise ManifestEditError(f"not valid YAML: {err}") from err
    except RecursionError as err:
        raise ManifestEditError("not valid YAML: nested too deeply") from err
    return documents


# --- locating ----------------------------------------------------------------------------------------------
def _compose(text: str) -> list[Node]:
    _read(text)
    try:
        return [n for n in YAML(typ="safe", pure=True).compose_all(text) if n is not None]
    except YAMLError as err:  # pragma: no cover - _read has parsed it already
        raise ManifestEditError(f"not valid YAML: {err}") from err


def _scalar(mapping: Node, key: str) -> str | None:
    if not isinstance(mapping, MappingNode):
        return None
    for k, v in mapping.value:
        if isinstance(k, ScalarNode) and k.value == key and isinstance(v, ScalarNode):
            return str(v.value)
    return None


def _child(mapping: Node, key: str) -> Node | None:
    if not isinstance(mapping, MappingNode):
        return None
    return next((v for k, v in mapping.value if isinstance(k, ScalarNode) and k.value == key), None)


def _meta(release: MappingNode, key: str) -> str | None:
    metadata = _child(release, "metadata")
    return _scalar(metadata, key) if metadata is not None else None


def _find_release(documents: list[Node], name: str, namespace: str | None) -> MappingNode:
    releases = [
        d
        for d in documents
        if isinstance(d, MappingNode)
        and _scalar(d, "kind") == KIND
        and (_scalar(d, "apiVersion") or "").startswith(f"{GROUP}/")
    ]
    # A GitOps tool often sets the namespace (kustomize `namespace:`), so a document without one matches too.
    matching = [
        r
        for r in releases
        if _meta(r, "name") == name and (namespace is None or _meta(r, "namespace") in (None, namespace))
    ]
    if len(matching) > 1:
        matching = [r for r in matching if _meta(r, "namespace") == namespace]
        if len(matching) != 1:
            raise ManifestEditError(f"several AppReleases named {name} in the file: give the namespace")
    if not matching:
        found = ", ".join(f"{_meta(r, 'namespace') or '(no namespace)'}/{_meta(r, 'name')}" for r in releases)
        raise ManifestEditError(
            f"no AppRelease {namespace + '/' if namespace else ''}{name} in the file "
            f"(AppReleases there: {found or 'none'})"
        )
    return matching[0]


def _spec_of(release: MappingNode, name: str) -> MappingNode:
    spec = _child(release, "spec")
    if not isinstance(spec, MappingNode):
        raise ManifestEditError(f"AppRelease {name} has no spec mapping")
    return spec


def _entry_or_none(spec: MappingNode, key: str, name: str) -> tuple[ScalarNode, ScalarNode] | None:
    for k, v in spec.value:
        if not (isinstance(k, ScalarNode) and k.value == key):
            continue
        if not isinstance(v, ScalarNode) or v.style in ("|", ">"):
            raise ManifestEditError(f"spec.{key} of AppRelease {name} is not a one-line value: edit it by hand")
        # An alias points at the anchored node elsewhere, an anchor is shared by its aliases: editing either
        # would change more than this field.
        if v.start_mark.index < k.end_mark.index or getattr(v, "anchor", None):
            raise ManifestEditError(f"spec.{key} of AppRelease {name} uses a YAML anchor or alias: edit it by hand")
        return k, v
    return None


def _entry(spec: MappingNode, key: str, name: str) -> tuple[ScalarNode, ScalarNode]:
    entry = _entry_or_none(spec, key, name)
    if entry is None:
        raise ManifestEditError(f"AppRelease {name} has no spec.{key}")
    return entry


def _insertion(text: str, spec: MappingNode, key: ScalarNode, value: ScalarNode, digest: str) -> tuple[int, int, str]:
    """Where and what to insert for a missing spec.digest: right after spec.version."""
    end = value.end_mark.index
    if spec.flow_style:
        return end, end, f", digest: {digest}"
    newline = text.find("\n", end)
    crlf = text[newline - 1] == "\r" if newline > 0 else "\r\n" in text
    eol = "\r\n" if crlf else "\n"
    line = f"{' ' * key.start_mark.column}digest: {digest}"
    if newline < 0:
        return len(text), len(text), eol + line
    return newline + 1, newline + 1, line + eol


# --- writing -----------------------------------------------------------------------------------------------
def _render(value: str, style: str | None) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style is None and _plain_is_string(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _plain_is_string(value: str) -> bool:
    """Plain only when both YAML 1.1 (Kubernetes' parser) and 1.2 read it back as this very string."""
    if not _PLAIN.match(value):
        return False
    try:
        old_reading = pyyaml.safe_load(value)
        new_reading = YAML(typ="safe", pure=True).load(value)
    except (pyyaml.YAMLError, YAMLError):
        return False
    return bool(old_reading == value and new_reading == value)


def _check(old: str, new: str, version: str, digest: str) -> None:
    """The edit must change exactly the two fields of the one document, as both YAML readers see it."""
    before = list(pyyaml.load_all(old, Loader=_StrictLoader))
    try:
        after = list(pyyaml.load_all(new, Loader=_StrictLoader))
    except pyyaml.YAMLError as err:  # pragma: no cover - a bug in the splice, never user input
        raise ManifestEditError(f"the edit would break the file ({err}); nothing was written") from err
    hits = 0
    for doc_before, doc_after in zip(before, after, strict=True):
        if doc_before == doc_after:
            continue
        hits += 1
        expected = copy.deepcopy(doc_before)
        expected["spec"].update(version=version, digest=digest)
        if expected != doc_after:
            raise ManifestEditError("the edit would change more than spec.version and spec.digest; nothing written")
    if hits > 1:
        raise ManifestEditError("the edit would change more than one document; nothing was written")
