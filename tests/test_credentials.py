from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from apprelease.registry import Credential, lookup, normalize_registry_host, parse_docker_config

PASSWORD = "pa55:w0rd-Secret"  # contains ':' to prove only the first one splits


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(auths: dict[str, Any]) -> str:
    return json.dumps({"auths": auths})


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def test_auth_base64_form() -> None:
    creds = parse_docker_config(config({"registry.example.com": {"auth": b64(f"alice:{PASSWORD}")}}))
    cred = creds["registry.example.com"]
    assert cred.username == "alice"
    assert secret(cred.password) == PASSWORD
    assert cred.identity_token is None


def test_username_password_form_and_bytes_input() -> None:
    raw = config({"127.0.0.1:5443": {"username": "bob", "password": PASSWORD, "email": "b@example.com"}})
    creds = parse_docker_config(raw.encode())
    assert creds["127.0.0.1:5443"].username == "bob"
    assert secret(creds["127.0.0.1:5443"].password) == PASSWORD


def test_auth_wins_over_username_password_like_docker() -> None:
    raw = {"auths": {"r.example": {"username": "x", "password": "y", "auth": b64("alice:pw")}}}
    cred = parse_docker_config(raw)["r.example"]
    assert (cred.username, secret(cred.password)) == ("alice", "pw")


def test_identity_token() -> None:
    creds = parse_docker_config(config({"myacr.azurecr.io": {"identitytoken": "refresh-xyz"}}))
    cred = creds["myacr.azurecr.io"]
    assert cred.username is None and cred.password is None
    assert secret(cred.identity_token) == "refresh-xyz"


def test_auth_without_padding_is_accepted() -> None:
    encoded = b64("u:p1").rstrip("=")
    assert parse_docker_config(config({"r.example": {"auth": encoded}}))["r.example"].username == "u"


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "https://index.docker.io/v2/"]
)
def test_docker_hub_keys(key: str) -> None:
    creds = parse_docker_config(config({key: {"auth": b64("hubuser:hubpass")}}))
    found = lookup(creds, "docker.io/library/nginx")
    assert found is not None and found.username == "hubuser"


def test_registry_1_docker_io_is_not_a_docker_hub_key_for_the_kubelet() -> None:
    # The kubelet matches it as any other host: images are named docker.io/..., so it never applies.
    creds = parse_docker_config(config({"registry-1.docker.io": {"auth": b64("hubuser:hubpass")}}))
    assert lookup(creds, "docker.io/library/nginx") is None


def test_keys_lose_scheme_and_v1_v2_but_keep_paths_and_case() -> None:
    creds = parse_docker_config(
        config(
            {
                "https://Registry.Example.com/v2/": {"auth": b64("a:b")},
                "http://localhost:5000": {"auth": b64("c:d")},
                "https://registry.example.com/v1/team-a": {"auth": b64("e:f")},
                "registry.example.com/team-b/": {"auth": b64("g:h")},
            }
        )
    )
    assert set(creds) == {
        "Registry.Example.com",
        "localhost:5000",
        "registry.example.com/team-a",
        "registry.example.com/team-b/",
    }
    assert lookup(creds, "localhost:5000/app") is not None
    assert lookup(creds, "Registry.Example.com/app") is not None
    assert lookup(creds, "registry.example.com/app") is None  # the kubelet compares hosts case-sensitively
    assert lookup(creds, "ghcr.io/app") is None


def test_docker_io_key_wins_over_the_index_docker_io_fallback() -> None:
    creds = parse_docker_config(
        config({"https://index.docker.io/v1/": {"auth": b64("old:x")}, "docker.io": {"auth": b64("new:y")}})
    )
    found = lookup(creds, "docker.io/library/nginx")
    assert found is not None and found.username == "new"


def test_entries_without_credentials_are_skipped_and_no_auths_is_empty() -> None:
    assert parse_docker_config(config({"ghcr.io": {}})) == {}
    assert parse_docker_config('{"credsStore": "desktop"}') == {}


def test_keys_the_kubelet_cannot_parse_are_skipped_not_fatal() -> None:
    creds = parse_docker_config(config({"host:notaport": {"auth": b64("a:b")}, "ok.example": {"auth": b64("c:d")}}))
    assert set(creds) == {"ok.example"}


def test_lookup_tolerates_unnormalised_mappings() -> None:
    cred = Credential(username="u", password=SecretStr("p"))
    assert lookup({"https://index.docker.io/v1/": cred}, "docker.io/library/nginx") is cred


def test_normalize_registry_host() -> None:
    assert normalize_registry_host("https://index.docker.io/v1/") == "index.docker.io"
    assert normalize_registry_host("ghcr.io/team") == "ghcr.io"
    assert normalize_registry_host("http://127.0.0.1:5000/") == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"auths": {"r.example": {"auth": "' + PASSWORD + '"}}', "not valid JSON"),
        ("not json at all " + PASSWORD, "not valid JSON"),
        (b"\xff\xfe" + PASSWORD.encode(), "invalid docker config"),
        ('["' + PASSWORD + '"]', "top level must be a JSON object"),
        ('{"auths": ["' + PASSWORD + '"]}', "'auths' must be a JSON object"),
        ('{"auths": {"r.example": "' + PASSWORD + '"}}', "must be a JSON object"),
        ('{"auths": {"r.example": {"auth": "!!' + PASSWORD + '!!"}}}', "is not valid base64"),
        ('{"auths": {"r.example": {"auth": "' + b64(PASSWORD.replace(":", "")) + '"}}}', "username:password"),
        (
            '{"auths": {"r.example": {"auth": "' + base64.b64encode(b"\xff:" + PASSWORD.encode()).decode() + '"}}}',
            "not valid base64 of UTF-8",
        ),
        ('{"auths": {"r.example": {"password": 12345}}}', "must be a string"),
    ],
)
def test_invalid_input_messages_do_not_leak_secrets(data: str | bytes, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_docker_config(data)
    message = str(info.value)
    assert fragment in message
    assert PASSWORD not in message
    assert PASSWORD.replace(":", "") not in message
    assert "12345" not in message
    # Not even via the exception chain, which tracebacks print.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_repr_and_str_do_not_leak() -> None:
    cred = parse_docker_config(config({"r.example": {"auth": b64(f"alice:{PASSWORD}")}}))["r.example"]
    token_cred = Credential(identity_token=SecretStr("refresh-" + PASSWORD))
    for text in (repr(cred), str(cred), repr(token_cred), str(token_cred), repr({"c": cred})):
        assert PASSWORD not in text
    assert "alice" in repr(cred)
    assert cred.model_dump_json().count(PASSWORD) == 0


def test_credential_is_frozen() -> None:
    cred = Credential(username="u")
    with pytest.raises(ValidationError):
        cred.username = "v"


def test_hostile_pull_secret_json_is_a_value_error_not_a_recursion_error_or_a_huge_allocation() -> None:
    deep = '{"auths": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ValueError, match="invalid docker config"):
        parse_docker_config(deep)
    wide = '{"auths": {}, "x": [' + "[]," * 300_000 + "[]]}"
    with pytest.raises(ValueError, match="invalid docker config"):
        parse_docker_config(wide)
