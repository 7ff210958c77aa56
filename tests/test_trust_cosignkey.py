"""cosign's own encrypted key file (`cosign generate-key-pair`), read by `apprelease build --sign --key`.

VECTOR was written by the real cosign v3.1.3 (`COSIGN_PASSWORD="unit-test vector" cosign generate-key-pair`), a
test key with no other use; e2e/test_trust_cosign.py proves the round trip against the binary itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from apprelease.cli import release
from apprelease.trust import cosignkey as cosignkey_module
from apprelease.trust import load_public_key
from apprelease.trust.cosignkey import WrongPassword, decrypt_cosign_key, is_cosign_key
from apprelease.trust.sign import load_private_key

PASSWORD = b"unit-test vector"
VECTOR = b"""-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJKU1NDMlR2eURjL1Ivc2JtOFYwU0o2b1NSZldnV3VF
V1ZKQi9HdUhJTG04PSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJwNFVJNDFIV2tzRC8wOE5qR21kcjU1STM2T0ZYcnc5NyJ9LCJj
aXBoZXJ0ZXh0IjoiZ1lxZmxBdTMzSU95MjEyRWV0NlQ5OUlFUjR3dnZGSHlBb01a
VzFKTjZEQ3JMOVh1ZkVSVDNLM2FGM0V2L2NHNHBleEgrbUJOMzNQaHh2aCs3dXhO
TGNOYWtiTXIzeTRENVpFUmpJdFVFUzd0YUYxV0lwY2M4VWcxOU0xVjVlODVQdHZN
M0srbTBBQXpGd0pkS1NtS0dzOFFXdGtnc0FvZHNhamZvbmJSRml6K1Y4Z25CaW4y
NFVFZDQwME1vQ0FCNUhmcGdGb1FvelRZcFE9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
"""
PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMAXosTRVgLI1Ovrosi4E1QDk3O3W
NJ38rly3AFs+C9Rtkw1pnSMb2iB0euhBCocU5zhLv2g5T27LPwWo+n9GcQ==
-----END PUBLIC KEY-----
"""


def rewrap(edit: dict[str, object], kind: str = "ENCRYPTED SIGSTORE PRIVATE KEY") -> bytes:
    """VECTOR's JSON body with top-level fields replaced, in a PEM block of type ``kind``."""
    body = base64.b64decode(b"".join(VECTOR.splitlines()[1:-1]))
    document = {**json.loads(body), **edit}
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    lines = "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n".encode()


def kdf(**params: int) -> dict[str, object]:
    body = json.loads(base64.b64decode(b"".join(VECTOR.splitlines()[1:-1])))
    return {"kdf": {**body["kdf"], "params": {**body["kdf"]["params"], **params}}}


def test_the_key_cosign_wrote_opens_with_its_password_and_matches_its_public_key() -> None:
    assert is_cosign_key(VECTOR)
    key = load_private_key(VECTOR, PASSWORD)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    signature = key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    assert load_public_key("cosign.pub", PUBLIC).verifies(signature, b"payload")


def test_the_older_pem_type_is_read_too() -> None:
    older = rewrap({}, kind="ENCRYPTED COSIGN PRIVATE KEY")
    assert decrypt_cosign_key(older, PASSWORD) == decrypt_cosign_key(VECTOR, PASSWORD)


def test_a_wrong_password_is_refused() -> None:
    with pytest.raises(WrongPassword, match="wrong password for cosign's key file"):
        load_private_key(VECTOR, b"not it")
    with pytest.raises(WrongPassword):
        load_private_key(VECTOR, b"")


@pytest.mark.parametrize(
    "params", [{"N": 1 << 30}, {"N": 1 << 20}, {"r": 1 << 20}, {"p": 1 << 16}, {"N": 1 << 15, "r": 16}, {"N": 1024}]
)
def test_scrypt_parameters_go_securesystemslib_would_refuse_are_refused_before_scrypt_runs(
    params: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_scrypt(**_: object) -> None:
        raise AssertionError("scrypt ran with parameters that should have been refused")

    monkeypatch.setattr(cosignkey_module, "Scrypt", no_scrypt)
    with pytest.raises(ValueError, match="unsupported scrypt parameters"):
        decrypt_cosign_key(rewrap(kdf(**params)), PASSWORD)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (rewrap({"cipher": {"name": "aes-gcm", "nonce": "AAAA"}}), "unsupported kdf"),
        (rewrap({"kdf": {"name": "argon2", "params": {"N": 1, "r": 1, "p": 1}, "salt": ""}}), "unsupported kdf"),
        (rewrap({"ciphertext": 7}), "malformed"),
        (rewrap({"ciphertext": "***"}), "not base64"),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGpzb24=\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "malformed",
        ),
        (VECTOR + b"\n" * 20_000, "too large"),
    ],
)
def test_a_malformed_or_oversized_key_file_is_a_clear_error(pem: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_private_key(pem, PASSWORD)


def test_the_cli_takes_cosigns_password_variable_and_a_wrong_one_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(VECTOR)
    monkeypatch.delenv("APPRELEASE_KEY_PASSWORD", raising=False)
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD.decode())
    assert isinstance(release.load_signer(path), ec.EllipticCurvePrivateKey)
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    with pytest.raises(typer.Exit) as exit_info:
        release.load_signer(path)
    assert exit_info.value.exit_code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "wrong password for cosign's key file" in lines[0]


def test_without_cosign_password_and_no_terminal_the_cli_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(VECTOR)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(typer.Exit):
        release.load_signer(path)
    assert "set COSIGN_PASSWORD" in capsys.readouterr().err


def test_on_a_terminal_the_cli_asks_for_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(VECTOR)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: PASSWORD.decode())
    assert isinstance(release.load_signer(path), ec.EllipticCurvePrivateKey)


def test_the_decryptor_bounds_the_file_itself() -> None:
    with pytest.raises(ValueError, match="larger than 16384 bytes"):
        decrypt_cosign_key(VECTOR + b" " * 16_384, PASSWORD)
