"""`rollback --file`: only spec.version and spec.digest change, every other byte of the file stays."""

from __future__ import annotations

import pytest
import yaml

from apprelease.cli.manifest_edit import ManifestEditError, set_version, unified_diff

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64

MANIFEST = f"""\
# The shop's web release. Reviewed by the platform team.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # same name as the release
  labels: {{apprelease.dev/release: web}}
spec:
  template:
    spec:
      containers:
        - name: web
          image: "registry.example.com/shop/web:placeholder"
---
apiVersion: apprelease.dev/v1alpha1
kind: AppRelease
metadata:
  name: web
  namespace: shop
spec:
  image: registry.example.com/shop/web   # no tag here
  # bumped by CI on every tag
  version: v1.4.2     # current
  digest: '{OLD}'
  workloads:
    - {{kind: Deployment, name: web}}
---
apiVersion: apprelease.dev/v1alpha1
kind: AppRelease
metadata:
  name: api
  namespace: shop
spec:
  image: registry.example.com/shop/api
  version: "v2.0.0"
  workloads: [{{kind: Deployment, name: api}}]
"""


def changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def test_only_the_two_values_change_byte_for_byte() -> None:
    edit = set_version(MANIFEST, name="web", namespace="shop", version="v1.4.1", digest=NEW)
    assert changed_lines(MANIFEST, edit.text) == [
        ("  version: v1.4.2     # current\n", "  version: v1.4.1     # current\n"),
        (f"  digest: '{OLD}'\n", f"  digest: '{NEW}'\n"),
    ]
    assert (edit.previous_version, edit.previous_digest) == ("v1.4.2", OLD)
    documents = list(yaml.safe_load_all(edit.text))
    assert documents[1]["spec"]["version"] == "v1.4.1" and documents[1]["spec"]["digest"] == NEW
    assert documents[0] == list(yaml.safe_load_all(MANIFEST))[0]


def test_a_missing_digest_is_inserted_after_the_version_keeping_its_quotes() -> None:
    edit = set_version(MANIFEST, name="api", namespace="shop", version="v1.9.0", digest=NEW)
    old_lines, new_lines = MANIFEST.splitlines(keepends=True), edit.text.splitlines(keepends=True)
    at = old_lines.index('  version: "v2.0.0"\n')
    assert new_lines[:at] == old_lines[:at]
    assert new_lines[at : at + 2] == ['  version: "v1.9.0"\n', f'  digest: "{NEW}"\n']
    assert new_lines[at + 2 :] == old_lines[at + 1 :]
    assert edit.previous_digest is None


def test_a_document_without_namespace_matches_and_another_namespace_does_not() -> None:
    text = "apiVersion: apprelease.dev/v1alpha1\nkind: AppRelease\nmetadata: {name: web}\nspec: {version: v2, x: 1}\n"
    edit = set_version(text, name="web", namespace="shop", version="v1", digest=NEW)
    assert edit.text == text.replace("{version: v2, x: 1}", f"{{version: v1, digest: {NEW}, x: 1}}")
    with pytest.raises(
        ManifestEditError, match=r"no AppRelease other/web in the file \(AppReleases there: shop/web, shop/api\)"
    ):
        set_version(MANIFEST, name="web", namespace="other", version="v1", digest=NEW)


def test_versions_that_yaml_would_not_read_as_text_get_quoted() -> None:
    text = "apiVersion: apprelease.dev/v1alpha1\nkind: AppRelease\nmetadata:\n  name: web\nspec:\n  version: v2\n"
    for version in ("1.10", "1e3", "yes", "0o17", "null"):
        edit = set_version(text, name="web", namespace=None, version=version, digest=NEW)
        assert f'  version: "{version}"\n' in edit.text
        assert yaml.safe_load(edit.text)["spec"]["version"] == version
    assert "  version: v1.0\n" in set_version(text, name="web", namespace=None, version="v1.0", digest=NEW).text


def test_crlf_line_endings_and_a_last_line_without_newline_are_kept() -> None:
    text = (
        "apiVersion: apprelease.dev/v1alpha1\r\nkind: AppRelease\r\nmetadata:\r\n  name: web\r\nspec:\r\n  version: v2"
    )
    edit = set_version(text, name="web", namespace=None, version="v1", digest=NEW)
    assert edit.text == text[: -len("v2")] + f"v1\r\n  digest: {NEW}"


def test_refusals_name_the_problem_and_change_nothing() -> None:
    head = "apiVersion: apprelease.dev/v1alpha1\nkind: AppRelease\nmetadata: {name: web}\n"
    cases = {
        head + "x: &v v2\nspec: {version: *v}\n": r"YAML alias \(\*v\) on line 5",
        head + "spec:\n  version: &v v2\n": "anchor or alias",
        head + "spec:\n  version: |\n    v2\n": "not a one-line value",
        head + "spec:\n  image: x\n": "has no spec.version",
        head + "spec: [1]\n": "no spec mapping",
        head + "spec: {version: v2\n": "not valid YAML",
        head + "spec: {version: v2}\n---\n" + head + "spec: {version: v3}\n": "several AppReleases named web",
    }
    for text, message in cases.items():
        with pytest.raises(ManifestEditError, match=message):
            set_version(text, name="web", namespace=None, version="v1", digest=NEW)


def test_setting_what_is_already_there_changes_nothing() -> None:
    edit = set_version(MANIFEST, name="web", namespace="shop", version="v1.4.2", digest=OLD)
    assert edit.text == MANIFEST and not edit.changed(MANIFEST)


def test_the_diff_is_a_unified_diff_of_the_two_lines() -> None:
    edit = set_version(MANIFEST, name="web", namespace="shop", version="v1.4.1", digest=NEW)
    diff = unified_diff(MANIFEST, edit.text, "deploy/web.yaml")
    assert diff.startswith("--- a/deploy/web.yaml\n+++ b/deploy/web.yaml\n@@ ")
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert removed == ["-  version: v1.4.2     # current", f"-  digest: '{OLD}'"]
    assert added == ["+  version: v1.4.1     # current", f"+  digest: '{NEW}'"]


HEAD = "apiVersion: apprelease.dev/v1alpha1\nkind: AppRelease\nmetadata: {name: web}\n"
# The bomb was 556 bytes; this one is of the same family: 12 levels of 9 aliases, 9**12 strings once
# expanded (a deep comparison of two readings of it runs for hours).
ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(11))
    + "---\n"
    + HEAD
    + "spec: {version: v2}\n"
)


def test_yaml_aliases_anywhere_in_the_file_are_refused_with_their_line() -> None:
    # A bomb expands to a billion nodes when a reader compares or copies it: refused before any reader does.
    with pytest.raises(ManifestEditError, match=r"YAML alias \(\*a\) on line 2"):
        set_version(ALIAS_BOMB, name="web", namespace=None, version="v1", digest=NEW)
    # Even a harmless alias in another document: neither reader is let near expansion.
    other = "apiVersion: v1\nkind: ConfigMap\ndata: {a: &x hi, b: *x}\n---\n" + HEAD + "spec: {version: v2}\n"
    with pytest.raises(ManifestEditError, match=r"YAML alias \(\*x\) on line 3"):
        set_version(other, name="web", namespace=None, version="v1", digest=NEW)
    merge = HEAD + "base: &base {version: v2}\nspec:\n  <<: *base\n  image: x\n"
    with pytest.raises(ManifestEditError, match="alias"):
        set_version(merge, name="web", namespace=None, version="v1", digest=NEW)


def test_duplicate_keys_are_refused_naming_the_line() -> None:
    # The YAML reader keeps the last `spec`, the editor found the first: a rollback that rolls nothing back.
    twice = HEAD + "spec:\n  version: v2\nspec:\n  version: v3\n"
    with pytest.raises(ManifestEditError, match=r"duplicate key 'spec' on line 6"):
        set_version(twice, name="web", namespace=None, version="v1", digest=NEW)
    inner = HEAD + "spec:\n  version: v2\n  digest: x\n  version: v3\n"
    with pytest.raises(ManifestEditError, match=r"duplicate key 'version' on line 7"):
        set_version(inner, name="web", namespace=None, version="v1", digest=NEW)
    # YAML 1.1 (Kubernetes' reading) sees `yes` and `true` as one key, YAML 1.2 as two: refused as well.
    booleans = HEAD + "spec: {version: v2}\ndata: {yes: 1, true: 2}\n"
    with pytest.raises(ManifestEditError, match=r"duplicate key .* on line 5"):
        set_version(booleans, name="web", namespace=None, version="v1", digest=NEW)
    elsewhere = "kind: ConfigMap\nkind: Secret\n---\n" + HEAD + "spec: {version: v2}\n"
    with pytest.raises(ManifestEditError, match=r"duplicate key 'kind' on line 2"):
        set_version(elsewhere, name="web", namespace=None, version="v1", digest=NEW)
