"""Which pull-secret credential an image gets: the kubelet's rules, row by row from the Kubernetes docs."""

from __future__ import annotations

import pytest

from apprelease.registry.credentials import Keyring, glob_match, urls_match


def entry(name: str) -> dict[str, str]:
    """A config entry whose username names it, so a row can say which entries were chosen."""
    return {"username": name, "password": f"secret-of-{name}"}


def chosen(keys: list[str], image: str, *more: list[str]) -> list[str]:
    keyring = Keyring()
    for document in (keys, *more):
        keyring.add({"auths": {key: entry(key) for key in document}})
    return [c.username or "" for c in keyring.lookup(image)]


DOCS_GLOBS = [
    ("*.kubernetes.io", "kubernetes.io/app", False),
    ("*.kubernetes.io", "abc.kubernetes.io/app", True),
    ("*.*.kubernetes.io", "abc.kubernetes.io/app", False),
    ("*.*.kubernetes.io", "abc.def.kubernetes.io/app", True),
    ("prefix.*.io", "prefix.kubernetes.io/app", True),
    ("*-good.kubernetes.io", "prefix-good.kubernetes.io/app", True),
    # The same page's config: "my-registry.example/images" and "*.my-registry.example/images".
    ("my-registry.example/images", "my-registry.example/images", True),
    ("my-registry.example/images", "my-registry.example/images/my-image", True),
    ("my-registry.example/images", "my-registry.example/images/another-image", True),
    ("*.my-registry.example/images", "sub.my-registry.example/images/my-image", True),
    ("*.my-registry.example/images", "a.sub.my-registry.example/images/my-image", False),
    ("*.my-registry.example/images", "a.b.sub.my-registry.example/images/my-image", False),
    ("my-registry.example/images", "a.sub.my-registry.example/images/my-image", False),
    # Kubelet Configuration (v1), CredentialProvider.matchImages (the same URLsMatch): "*.io" matches one
    # label only; a key with a port needs that port, one without a port matches only images without one.
    ("*.azurecr.io", "myacr.azurecr.io/team/app", True),
    ("*.io", "k8s.io/app", True),
    ("*.io", "registry.k8s.io/app", False),
    ("registry.io:8080/path", "registry.io:8080/path/app", True),
    ("registry.io:8080/path", "registry.io/path/app", False),
    ("registry.io", "registry.io:8080/app", False),
    ("123456789.dkr.ecr.us-east-1.amazonaws.com", "123456789.dkr.ecr.us-east-1.amazonaws.com/app", True),
    # Go's filepath.Match in a label: classes and ranges; a malformed pattern never matches.
    ("reg[a-z]stry.example.com", "registry.example.com/app", True),
    ("reg[0-9]stry.example.com", "registry.example.com/app", False),
    ("reg[.example.com", "reg.example.com/app", False),
    # Go's url.Parse reads the key first: '?' starts a query (the key is then "registr") and '^' is no
    # host character (the kubelet ignores the entry), so neither works as a glob in a key.
    ("registr?.example.com", "registry.example.com/app", False),
    ("reg[^0-9]stry.example.com", "registry.example.com/app", False),
]


@pytest.mark.parametrize(("key", "image", "matches"), DOCS_GLOBS)
def test_kubernetes_docs_glob_and_path_rows(key: str, image: str, matches: bool) -> None:
    """Rows from the Kubernetes documentation, Concepts > Containers > Images > "Interpretation of config.json"
    (https://kubernetes.io/docs/concepts/containers/images/#config-json) and the kubelet's
    CredentialProvider ``matchImages`` reference, which the same ``URLsMatch`` implements."""
    assert urls_match(key, image) is matches
    assert chosen([key], image) == ([key] if matches else [])


KEYRING_ROWS = [
    # The case: keys for two teams on one host; each image gets its own team's credential.
    (
        ["registry.example.com/team-a", "registry.example.com/team-b"],
        "registry.example.com/team-b/app",
        ["registry.example.com/team-b"],
    ),
    (
        ["registry.example.com/team-a", "registry.example.com/team-b"],
        "registry.example.com/team-a/app",
        ["registry.example.com/team-a"],
    ),
    (["registry.example.com/team-a", "registry.example.com/team-b"], "registry.example.com/team-c/app", []),
    # Docs: "my-registry.example/images" and ".../images/subpath" both match .../subpath/my-image; the kubelet
    # tries both, the most specific first (its index is reverse-sorted).
    (
        ["my-registry.example/images", "my-registry.example/images/subpath"],
        "my-registry.example/images/subpath/my-image",
        ["my-registry.example/images/subpath", "my-registry.example/images"],
    ),
    # A host key still applies, after the path keys; an exact host sorts before a glob of it.
    (
        ["registry.example.com", "registry.example.com/team-b", "*.example.com"],
        "registry.example.com/team-b/app",
        ["registry.example.com/team-b", "registry.example.com", "*.example.com"],
    ),
    # The path is a string prefix, as in the kubelet: "team" matches "team-b/...".
    (["registry.example.com/team"], "registry.example.com/team-b/app", ["registry.example.com/team"]),
    # Schemes and /v1/ /v2/ are dropped from keys.
    (["https://registry.example.com/v2/"], "registry.example.com/app", ["https://registry.example.com/v2/"]),
    (
        ["http://registry.example.com:5000/v1/team-b"],
        "registry.example.com:5000/team-b/app",
        ["http://registry.example.com:5000/v1/team-b"],
    ),
    # Docker Hub: docker.io (and paths under it) match like any host; index.docker.io (as `docker login` writes
    # https://index.docker.io/v1/) only when nothing else matched.
    (["https://index.docker.io/v1/"], "docker.io/library/nginx", ["https://index.docker.io/v1/"]),
    (["index.docker.io"], "docker.io/acme/app", ["index.docker.io"]),
    (["docker.io"], "docker.io/library/nginx", ["docker.io"]),
    (["https://index.docker.io/v1/", "docker.io/acme"], "docker.io/acme/app", ["docker.io/acme"]),
    (["https://index.docker.io/v1/"], "quay.io/acme/app", []),
]


@pytest.mark.parametrize(("keys", "image", "expected"), KEYRING_ROWS)
def test_keyring_returns_every_match_in_the_kubelets_order(keys: list[str], image: str, expected: list[str]) -> None:
    """Kubernetes docs, "Interpretation of config.json" (see above), and the kubelet's BasicDockerKeyring."""
    assert chosen(keys, image) == expected


def test_several_secrets_form_one_keyring_in_the_pods_order() -> None:
    # A path key in a later Secret still beats a host key in an earlier one; under one key, the earlier first.
    keyring = Keyring()
    keyring.add({"auths": {"registry.example.com": entry("first-host")}})
    keyring.add(
        {"auths": {"registry.example.com/team-b": entry("second-path"), "registry.example.com": entry("second-host")}}
    )
    names = [c.username for c in keyring.lookup("registry.example.com/team-b/app")]
    assert names == ["second-path", "first-host", "second-host"]
    assert len(keyring) == 3


def test_a_malformed_document_leaves_the_keyring_unchanged() -> None:
    keyring = Keyring()
    keyring.add({"auths": {"r.example": entry("kept")}})
    with pytest.raises(ValueError):
        keyring.add('{"auths": {"r.example": {"auth": "!!"}}}')
    assert [c.username for c in keyring.lookup("r.example/app")] == ["kept"]


def test_a_hostile_glob_costs_no_exponential_time() -> None:
    # A regex or a backtracking matcher explodes on many stars against a label that almost matches.
    label = "a" * 63
    assert glob_match("*a" * 40 + "*b", label) is False
    assert glob_match("*" * 100_000 + "a", label) is True
    assert glob_match("?" * 64, label) is False


def test_glob_match_is_gos_filepath_match() -> None:
    assert glob_match("registr?", "registry") and not glob_match("registr?", "registr")
    assert glob_match("reg[^0-9]", "regx") and not glob_match("reg[^0-9]", "reg5")
    assert glob_match("a\\*b", "a*b") and not glob_match("a\\*b", "axb")
    for malformed in ("[]", "[a-", "[z-a]", "a\\", "[-]", "[^"):
        assert not glob_match(malformed, "a")
