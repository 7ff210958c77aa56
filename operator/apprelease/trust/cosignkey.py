"""cosign's own encrypted private key file (``cosign generate-key-pair``'s ``cosign.key``), decrypted with
``cryptography``'s scrypt and PyNaCl's secretbox: no home-made cryptography, only the envelope is read here.

Format (sigstore/cosign ``pkg/cosign/keys.go``, secure-systems-lab/go-securesystemslib ``encrypted/encrypted.go``):
a PEM block of type ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older cosign: ``ENCRYPTED COSIGN PRIVATE KEY``) whose
body is JSON ``{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name":
"nacl/secretbox", "nonce"}, "ciphertext"}`` (byte strings in standard base64, as Go's encoding/json writes them).
The 32-byte secretbox key is scrypt(password, salt, N, r, p); the plaintext is a PKCS#8 DER private key.

Bounds: the file is at most ``MAX_KEY_PEM_BYTES``; scrypt parameters are only the three sets go-securesystemslib
itself accepts (``CheckParams``: N 2^15, 2^16 or 2^17 with r 8, p 1; at most 128 MiB of scrypt memory), so a
crafted file cannot make the CLI allocate more.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .keys import MAX_KEY_PEM_BYTES

__all__ = ["COSIGN_KEY_PEM_TYPES", "WrongPassword", "decrypt_cosign_key", "is_cosign_key"]

COSIGN_KEY_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# go-securesystemslib's legacy, standard and OWASP strengths: the only (N, r, p) it decrypts with.
SCRYPT_PARAMS = frozenset({(1 << 15, 8, 1), (1 << 16, 8, 1), (1 << 17, 8, 1)})
_PEM = re.compile(
    rb"-----BEGIN (?P<type>[A-Z ]+)-----\r?\n(?P<body>[A-Za-z0-9+/=\r\n]+?)-----END (?P=type)-----", re.DOTALL
)
_MAX_FIELD = 8 * 1024  # base64 of a salt (32 bytes), a nonce (24) or a PKCS#8 key (under 200 bytes)


class WrongPassword(ValueError):
    """The password does not open the key file (secretbox authentication failed)."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")
    N: int
    r: int
    p: int


class _Kdf(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=64)
    params: _Params
    salt: str = Field(max_length=_MAX_FIELD)


class _Cipher(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=64)
    nonce: str = Field(max_length=_MAX_FIELD)


class _Encrypted(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kdf: _Kdf
    cipher: _Cipher
    ciphertext: str = Field(max_length=_MAX_FIELD)


def _block(pem: bytes) -> bytes | None:
    """The body of the first cosign key PEM block, None when the file holds none."""
    for found in _PEM.finditer(pem[:MAX_KEY_PEM_BYTES]):
        if found.group("type").decode("ascii") in COSIGN_KEY_PEM_TYPES:
            return base64.b64decode(b"".join(found.group("body").split()), validate=True)
    return None


def is_cosign_key(pem: bytes) -> bool:
    """True when ``pem`` is cosign's encrypted key file (by its PEM block type)."""
    return any(f"-----BEGIN {kind}-----".encode() in pem for kind in COSIGN_KEY_PEM_TYPES)


def _bytes(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"cosign key file: {what} is not base64") from None


def _envelope(pem: bytes) -> _Encrypted:
    if len(pem) > MAX_KEY_PEM_BYTES:
        raise ValueError(f"the key file is larger than {MAX_KEY_PEM_BYTES} bytes")
    try:
        body = _block(pem)
        if body is None:
            raise ValueError("no ENCRYPTED SIGSTORE PRIVATE KEY block")
        return _Encrypted.model_validate_json(body)
    except (binascii.Error, ValidationError, ValueError):
        raise ValueError("not a cosign key file (malformed ENCRYPTED SIGSTORE PRIVATE KEY block)") from None


def decrypt_cosign_key(pem: bytes, password: bytes) -> bytes:
    """The PKCS#8 DER private key inside cosign's encrypted key file ``pem``, opened with ``password`` (may be
    empty: ``COSIGN_PASSWORD=""``). ValueError for a malformed file, another KDF or cipher, or scrypt parameters
    go-securesystemslib would not accept; WrongPassword when the password does not open it."""
    data = _envelope(pem)
    if data.kdf.name != "scrypt" or data.cipher.name != "nacl/secretbox":
        raise ValueError(f"cosign key file: unsupported kdf {data.kdf.name!r} or cipher {data.cipher.name!r}")
    params = (data.kdf.params.N, data.kdf.params.r, data.kdf.params.p)
    if params not in SCRYPT_PARAMS:
        raise ValueError(f"cosign key file: unsupported scrypt parameters N={params[0]} r={params[1]} p={params[2]}")
    nonce = _bytes(data.cipher.nonce, "the nonce")
    if len(nonce) != SecretBox.NONCE_SIZE:
        raise ValueError("cosign key file: the nonce is not 24 bytes")
    salt, ciphertext = _bytes(data.kdf.salt, "the salt"), _bytes(data.ciphertext, "the ciphertext")
    key = Scrypt(salt=salt, length=SecretBox.KEY_SIZE, n=params[0], r=params[1], p=params[2]).derive(password)
    try:
        return SecretBox(key).decrypt(ciphertext, nonce)
    except CryptoError:
        raise WrongPassword("wrong password for cosign's key file (COSIGN_PASSWORD)") from None
