"""Signing what ``apprelease build --sign`` pushes, in cosign's bundle format (Sigstore bundle v0.3, keyed, no
transparency log: what ``cosign sign --key`` writes with a signing config that has none).

The bundle holds a DSSE envelope over an in-toto Statement v1 whose subject is the image digest; its
``verificationMaterial.publicKey.hint`` is cosign's key hint. ``cosign verify --key`` and ``verify-attestation``
accept it (e2e/test_trust_cosign.py proves it). Keys: PEM private keys (PKCS#8 or SEC1, ECDSA P-256/P-384 or
Ed25519, optionally encrypted), or cosign's own encrypted key file (``cosignkey``).
"""

from __future__ import annotations

import base64
import json

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .cosignkey import decrypt_cosign_key, is_cosign_key
from .keys import MAX_KEY_PEM_BYTES, hint_of
from .statement import COSIGN_SIGN_PREDICATE, INTOTO_PAYLOAD_TYPE, pae

__all__ = ["BUNDLE_MEDIA_TYPE", "PrivateKey", "bundle", "load_private_key", "statement"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def load_private_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """A PEM private key, or cosign's encrypted key file (``cosignkey``; ``password`` may then be empty, as
    ``COSIGN_PASSWORD=""``); ValueError for anything else (RSA, another curve), WrongPassword (a ValueError) for a
    wrong password of a cosign key file."""
    if len(pem) > MAX_KEY_PEM_BYTES:
        raise ValueError("the key file is too large for a private key")
    if is_cosign_key(pem):
        if password is None:
            raise ValueError("cosign's key file is encrypted and no password was given")
        der = decrypt_cosign_key(pem, password)
        try:
            return _accepted(serialization.load_der_private_key(der, password=None))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError("cosign's key file holds no PKCS#8 private key") from None
    try:
        key = serialization.load_pem_private_key(pem, password=password or None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM private key (or a wrong password): {exc}") from None
    return _accepted(key)


def _accepted(key: object) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError("the key is neither ECDSA P-256/P-384 nor Ed25519")


def _sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    algorithm = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
    return key.sign(message, ec.ECDSA(algorithm))


def statement(
    digest: str, name: str, predicate_type: str = COSIGN_SIGN_PREDICATE, predicate: dict[str, object] | None = None
) -> bytes:
    """An in-toto Statement v1 about one image (``name``: the repository, ``digest``: ``sha256:<hex>``)."""
    algorithm, _, value = digest.partition(":")
    document = {
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {algorithm: value}}],
        "predicateType": predicate_type,
        "predicate": predicate if predicate is not None else {},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def bundle(key: PrivateKey, payload: bytes, payload_type: str = INTOTO_PAYLOAD_TYPE) -> bytes:
    """A Sigstore bundle v0.3 whose DSSE envelope signs ``payload`` with ``key`` (keyed: public key hint only)."""
    signature = _sign(key, pae(payload_type, payload))
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": hint_of(key.public_key())}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")
