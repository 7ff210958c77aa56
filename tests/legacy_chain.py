"""cosign's legacy keyless signature (tag ``sha256-<hex>.sig``) issued by the test's private Sigstore instance,
shaped the way cosign v2 writes it (``pkg/cosign/bundle/rekor.go``, ``pkg/oci/static``): the simple-signing
payload as the layer, and the layer annotations ``dev.cosignproject.cosign/signature`` (base64 DER signature over
the payload bytes), ``dev.sigstore.cosign/certificate`` (PEM leaf), ``dev.sigstore.cosign/chain`` (PEM chain up to
the root) and ``dev.sigstore.cosign/bundle`` (Go's JSON of RekorBundle: the signed entry timestamp over the RFC 8785
JSON of the Rekor payload, whose body is the logged ``hashedrekord`` entry).

Every hostile variant is a keyword: what a registry writer (or a compromised CI) could change.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from apprelease.trust import LegacyArtifact

from .sigstore_chain import PrivateSigstore
from .trustkit import simple_signing

_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _log_id(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _server_leaf(
    instance: PrivateSigstore, key: ec.EllipticCurvePrivateKey, issuer: str, subject: str
) -> x509.Certificate:
    """A leaf the private CA issued with the Fulcio identity extensions but for serverAuth, and no SCT."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(instance.ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(instance.ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(subject)]), critical=True)
        .add_extension(x509.UnrecognizedExtension(_ISSUER_V1, issuer.encode()), critical=False)
        .sign(instance.ca_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class Hostile:
    """What to forge; the defaults give an honest signature."""

    signed_payload: bytes | None = None  # the signature is over these bytes instead of the layer
    logged_payload: bytes | None = None  # the Rekor entry hashes these bytes instead of the layer
    set_key: ec.EllipticCurvePrivateKey | None = None  # the SET signed by another key, under its own logID
    claimed_log: bool = False  # with set_key: the SET claims the trusted log's logID
    shift_integrated: int = 0  # the payload's integratedTime moved after the SET was signed (seconds)
    integrated_offset: int = 0  # the entry logged this many seconds from now (the SET honest about it)
    chain: str | None = None  # the chain annotation's text instead of the CA
    server_auth: bool = False  # a leaf for TLS servers (serverAuth), not for code signing


def legacy_keyless(
    instance: PrivateSigstore, digest: str, issuer: str, subject: str, hostile: Hostile = Hostile()
) -> LegacyArtifact:
    """A legacy keyless signature of ``digest`` by a fresh key certified for ``subject`` by ``instance``."""
    payload = simple_signing(digest)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _server_leaf(instance, key, issuer, subject)
        if hostile.server_auth
        else instance.certificate(key, issuer, subject)
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    signature = _b64(key.sign(hostile.signed_payload or payload, ec.ECDSA(hashes.SHA256())))
    body = json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(hostile.logged_payload or payload).hexdigest(),
                    }
                },
                "signature": {"content": signature, "publicKey": {"content": _b64(cert_pem)}},
            },
        },
        separators=(",", ":"),
    ).encode()
    set_key = hostile.set_key or instance.log_key
    integrated = int(dt.datetime.now(dt.UTC).timestamp()) + hostile.integrated_offset
    log_id = _log_id(instance.log_key if hostile.claimed_log else set_key)
    signed: dict[str, str | int] = {"body": _b64(body), "integratedTime": integrated, "logID": log_id, "logIndex": 7}
    entry_timestamp = set_key.sign(rfc8785.dumps(signed), ec.ECDSA(hashes.SHA256()))
    rekor_payload = {**signed, "integratedTime": integrated + hostile.shift_integrated}
    return LegacyArtifact(
        payload,
        signature,
        cert_pem.decode(),
        "tag sha256-aaaa.sig layer sha256:1",
        chain=hostile.chain
        if hostile.chain is not None
        else instance.ca.public_bytes(serialization.Encoding.PEM).decode(),
        rekor_bundle=json.dumps({"SignedEntryTimestamp": _b64(entry_timestamp), "Payload": rekor_payload}),
    )
