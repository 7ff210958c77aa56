from __future__ import annotations

import pytest

from apprelease.core.reference import (
    TAG_PATTERN,
    Reference,
    is_valid_digest,
    is_valid_tag,
    parse,
    parse_repository,
    registry_api_host,
    same_repository,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("library/nginx", "docker.io", "library/nginx", None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("docker.io/library/nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("bitnami/redis", "docker.io", "bitnami/redis", None, None),
        ("localhost:5000/a", "localhost:5000", "a", None, None),
        ("localhost/a", "localhost", "a", None, None),
        ("127.0.0.1:5443/shop/web:v1", "127.0.0.1:5443", "shop/web", "v1", None),
        ("registry.example.com/path@" + DIGEST, "registry.example.com", "path", None, DIGEST),
        ("ghcr.io/org/team/app:v2.0.1@" + DIGEST, "ghcr.io", "org/team/app", "v2.0.1", DIGEST),
        ("[::1]:5000/app:latest", "[::1]:5000", "app", "latest", None),
    ],
)
def test_parse_normalises_like_docker(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = parse(text)
    assert ref == Reference(domain=domain, path=path, tag=tag, digest=digest)
    assert ref.repository == f"{domain}/{path}"


def test_str_round_trips_the_normalised_form() -> None:
    assert str(parse("nginx")) == "docker.io/library/nginx"
    assert str(parse("nginx:1@" + DIGEST)) == f"docker.io/library/nginx:1@{DIGEST}"
    assert str(parse("localhost:5000/a:b")) == "localhost:5000/a:b"
    assert parse(str(parse("127.0.0.1:5443/shop/web:v1"))) == parse("127.0.0.1:5443/shop/web:v1")


def test_with_digest_drops_the_tag_and_with_tag_keeps_the_repository() -> None:
    ref = parse("127.0.0.1:5443/shop/web:v1")
    pinned = ref.with_digest(DIGEST)
    assert pinned == Reference("127.0.0.1:5443", "shop/web", None, DIGEST)
    assert str(pinned) == f"127.0.0.1:5443/shop/web@{DIGEST}"
    assert ref.with_tag("v2") == Reference("127.0.0.1:5443", "shop/web", "v2", None)
    assert ref.tag == "v1"  # frozen: the original is untouched


def test_with_digest_and_with_tag_validate() -> None:
    ref = parse("nginx")
    with pytest.raises(ValueError, match="invalid digest"):
        ref.with_digest("sha256:abc")
    with pytest.raises(ValueError, match="invalid tag"):
        ref.with_tag("-x")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "whitespace"),
        (" nginx", "whitespace"),
        ("nginx :1", "whitespace"),
        ("Foo/Bar", "repository name must be lowercase"),
        ("NGINX", "repository name must be lowercase"),
        ("example.com/Shop/web", "repository name must be lowercase"),
        ("nginx:-x", "invalid tag '-x'"),
        ("nginx:.x", "invalid tag '.x'"),
        ("nginx:" + "a" * 129, "invalid tag"),
        ("repo:", "tag is empty"),
        ("nginx@sha256:abc", "sha256 digest must be 64 lowercase hexadecimal characters"),
        ("nginx@sha256:" + "A" * 64, "sha256 digest must be 64 lowercase hexadecimal characters"),
        ("nginx@sha256:" + "g" * 64, "sha256 digest must be 64 lowercase hexadecimal characters"),
        ("nginx@sha256:" + "a" * 65, "sha256 digest must be 64"),
        ("nginx@md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("nginx@", "digest is empty"),
        ("a//b", "empty path component"),
        ("a" * 64, "64-character hexadecimal"),
        ("nginx:1:2", "invalid tag"),
    ],
)
def test_parse_errors_are_value_errors_naming_problem_and_input(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(f"invalid image reference {text!r}")


def test_parse_error_message_example_from_the_spec() -> None:
    with pytest.raises(ValueError, match=r"^invalid image reference 'Foo/Bar': repository name must be lowercase$"):
        parse("Foo/Bar")


def test_parse_never_raises_other_exception_types() -> None:
    weird = ["@", ":", "/", "::", "a@b@c", "a/../b", "\x00", "é", "a:b/c", "[::1/a", "x" * 300, "a/b:c@d"]
    for text in weird:
        with pytest.raises(ValueError):
            parse(text)


def test_parse_repository_refuses_tag_and_digest() -> None:
    assert parse_repository("registry.example.com/shop/web") == Reference(
        "registry.example.com", "shop/web", None, None
    )
    with pytest.raises(ValueError, match="must be a repository without a tag; put the version in spec.version"):
        parse_repository("nginx:1.27")
    with pytest.raises(ValueError, match="without a digest; put it in spec.digest"):
        parse_repository("nginx@" + DIGEST)
    with pytest.raises(ValueError, match="must be lowercase"):
        parse_repository("Nginx")


def test_same_repository() -> None:
    assert same_repository("nginx:1", "docker.io/library/nginx@" + DIGEST)
    assert same_repository("nginx", "index.docker.io/library/nginx:latest")
    assert same_repository("localhost:5000/a:1", "localhost:5000/a:2")
    assert not same_repository("localhost:5000/a", "localhost:5001/a")
    assert not same_repository("nginx", "bitnami/nginx")
    assert not same_repository("nginx", "NGINX")
    assert not same_repository("", "")


def test_is_valid_tag() -> None:
    assert is_valid_tag("v1")
    assert is_valid_tag("1.27.0-alpine_3")
    assert is_valid_tag("_private")
    assert is_valid_tag("A" * 128)
    assert not is_valid_tag("A" * 129)
    assert not is_valid_tag(".hidden")
    assert not is_valid_tag("-x")
    assert not is_valid_tag("")
    assert not is_valid_tag("v1/2")
    assert not is_valid_tag("v1+build")
    assert not is_valid_tag("ünïcode")
    assert TAG_PATTERN == r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"


def test_is_valid_digest() -> None:
    assert is_valid_digest(DIGEST)
    assert is_valid_digest("sha512:" + "a" * 128)
    assert not is_valid_digest("sha256:" + "a" * 63)
    assert not is_valid_digest("sha256")
    assert not is_valid_digest("md5:" + "a" * 32)


def test_registry_api_host() -> None:
    assert registry_api_host("docker.io") == "registry-1.docker.io"
    assert registry_api_host("ghcr.io") == "ghcr.io"
    assert registry_api_host("localhost:5000") == "localhost:5000"
    assert registry_api_host("127.0.0.1:5443") == "127.0.0.1:5443"


def test_a_text_parsed_again_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every pass parses the same image texts (issue 19: a tenth of a pass's CPU at 1,000 AppReleases).
    from docker_image import reference as library

    from apprelease.core import reference

    calls: list[str] = []
    original = library.Reference.parse_normalized_named

    def counting(text: str) -> object:
        calls.append(text)
        return original(text)

    monkeypatch.setattr(library.Reference, "parse_normalized_named", staticmethod(counting))
    text = "registry.example.com/cache-test/web:v1"
    assert reference.parse(text) == reference.parse(text)
    assert calls == [text]
    with pytest.raises(ValueError):
        reference.parse("Bad/Cache-Test:v1")  # errors are not kept: each call raises
    with pytest.raises(ValueError):
        reference.parse("Bad/Cache-Test:v1")
    assert reference._parse.cache_info().maxsize == reference.PARSED_CACHE  # bounded
