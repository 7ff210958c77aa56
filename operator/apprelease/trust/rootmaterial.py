"""What offline verification of cosign's legacy keyless format needs from a Sigstore ``trusted_root.json``: the
Fulcio certificates, the transparency-log keys by log id, and the CT log keys (for the certificate's SCT).

Parsed with sigstore's own models (``sigstore_models``, ``sigstore.models.TrustedRoot``: imported lazily, they come
with the ``apprelease[keyless]`` extra) and cached per root text, bounded in count like ``keyless``'s verifiers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .errors import SignatureUntrusted
from .keys import PublicKey, load_public_key

if TYPE_CHECKING:
    from sigstore._internal.trust import CTKeyring  # imported lazily at run time (see above)

__all__ = ["RootMaterial", "TransparencyLog", "root_material"]

_MAX_ROOTS = 16
_NO_SIGSTORE = "keyless verification needs the 'sigstore' package (apprelease[keyless])"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_lock = threading.Lock()
_roots: dict[str, RootMaterial] = {}


@dataclass(frozen=True)
class TransparencyLog:
    """A log's key and the time range it signs entries in (``publicKey.validFor``; ``end`` None: still active)."""

    key: PublicKey
    start: dt.datetime
    end: dt.datetime | None

    def valid_at(self, when: dt.datetime) -> bool:
        return self.start <= when and (self.end is None or when <= self.end)


@dataclass(frozen=True)
class RootMaterial:
    """``authorities``: every certificate of every ``certificateAuthorities`` chain (roots and intermediates, the
    store sigstore-python verifies against); ``logs``: by hex ``logId.keyId`` (SHA-256 of the DER key);
    ``ct_keyring``: sigstore's CTKeyring, None when the root lists no CT log."""

    authorities: tuple[x509.Certificate, ...]
    logs: dict[str, TransparencyLog]
    ct_keyring: CTKeyring | None


def _log(raw: bytes | None, name: str, start: dt.datetime | None, end: dt.datetime | None) -> TransparencyLog | None:
    """A transparency-log key, None when of a kind keys.py does not verify with (e.g. RSA): never trusted."""
    try:
        key = serialization.load_der_public_key(raw or b"")
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return TransparencyLog(load_public_key(name, pem), start or _EPOCH, end)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def _parse(text: str) -> RootMaterial:
    try:
        from sigstore._internal.trust import KeyringPurpose
        from sigstore.errors import Error
        from sigstore.models import TrustedRoot
        from sigstore_models.trustroot import v1 as trustroot_v1
    except ImportError:
        raise SignatureUntrusted(_NO_SIGSTORE) from None
    try:
        model = trustroot_v1.TrustedRoot.from_json(text)
        authorities = tuple(
            x509.load_der_x509_certificate(c.raw_bytes)
            for ca in model.certificate_authorities
            for c in ca.cert_chain.certificates
        )
        ct_keyring = TrustedRoot(model).ct_keyring(KeyringPurpose.VERIFY) if model.ctlogs else None
    except (ValueError, Error) as exc:  # pydantic's ValidationError is a ValueError
        raise SignatureUntrusted(f"the trusted root is not usable: {type(exc).__name__}") from None
    logs: dict[str, TransparencyLog] = {}
    for tlog in model.tlogs:
        valid = tlog.public_key.valid_for
        log = _log(
            tlog.public_key.raw_bytes, tlog.base_url, valid.start if valid else None, valid.end if valid else None
        )
        if log is not None:
            logs[tlog.log_id.key_id.hex()] = log
    return RootMaterial(authorities, logs, ct_keyring)


def root_material(text: str) -> RootMaterial:
    """The material of the trusted root ``text`` (bounded by the caller); SignatureUntrusted when unusable."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _lock:
        found = _roots.get(key)
    if found is not None:
        return found
    root = _parse(text)
    with _lock:
        if len(_roots) >= _MAX_ROOTS:
            _roots.pop(next(iter(_roots)))
        _roots[key] = root
    return root
