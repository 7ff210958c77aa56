"""Public keys from PEM text, their fingerprints, and signature checks, all with ``cryptography``.

Accepted keys (Flux's and cosign's conventions, ``*.pub`` entries of a Secret): ECDSA on P-256 (signatures over
SHA-256) or P-384 (SHA-384), and Ed25519 (over the message itself). cosign's ``cosign.pub`` is an ordinary
``PUBLIC KEY`` PEM block of a P-256 key. Anything else (RSA, other curves, private keys) is refused, so a
tenant's Secret cannot widen what the operator accepts.

Fingerprint: ``SHA256:`` + unpadded base64 of SHA-256 over the DER SubjectPublicKeyInfo (OpenSSH's notation;
the digest cosign puts, padded, in a bundle's ``publicKey.hint``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = ["MAX_KEY_PEM_BYTES", "PublicKey", "fingerprint_of", "hint_of", "load_public_key", "load_public_keys"]

MAX_KEY_PEM_BYTES = 16 * 1024  # one PEM public key; a P-384 key is under 300 bytes
MAX_KEYS = 64  # keys one AppRelease may trust

_Key = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _spki(key: _Key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint_of(key: _Key) -> str:
    """``SHA256:<unpadded base64>`` of the key's DER SubjectPublicKeyInfo."""
    digest = hashlib.sha256(_spki(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def hint_of(key: _Key) -> str:
    """cosign's key hint: padded base64 of SHA-256 over the DER SubjectPublicKeyInfo."""
    return base64.b64encode(hashlib.sha256(_spki(key)).digest()).decode("ascii")


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key: where it came from (a Secret entry name), its fingerprint, the key itself."""

    name: str
    fingerprint: str
    hint: str
    key: _Key

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` (DER for ECDSA, raw 64 bytes for Ed25519) signs ``message``."""
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                algorithm = hashes.SHA384() if self.key.curve.key_size == 384 else hashes.SHA256()
                self.key.verify(signature, message, ec.ECDSA(algorithm))
        except (InvalidSignature, ValueError):
            return False
        return True


def load_public_key(name: str, pem: bytes | str) -> PublicKey:
    """Parse one PEM public key; ValueError (naming ``name``) for anything not accepted."""
    raw = pem.encode("utf-8") if isinstance(pem, str) else pem
    if len(raw) > MAX_KEY_PEM_BYTES:
        raise ValueError(f"key {name}: larger than {MAX_KEY_PEM_BYTES} bytes")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"key {name}: not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise ValueError(f"key {name}: ECDSA curve {key.curve.name} is not accepted (P-256 or P-384)")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"key {name}: {type(key).__name__} is not accepted (ECDSA P-256/P-384 or Ed25519)")
    return PublicKey(name=name, fingerprint=fingerprint_of(key), hint=hint_of(key), key=key)


def load_public_keys(entries: dict[str, bytes]) -> tuple[PublicKey, ...]:
    """The ``*.pub`` entries of a Secret (name -> PEM bytes) as keys, sorted by name; ValueError on any bad one."""
    names = sorted(name for name in entries if name.endswith(".pub"))
    if len(names) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} public keys")
    return tuple(load_public_key(name, entries[name]) for name in names)
