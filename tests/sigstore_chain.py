"""A private Sigstore instance built in the test: a Fulcio-like root CA, a CT log key, a Rekor-like log key, and
the means to issue a keyless bundle (leaf certificate with the Fulcio extensions and an embedded SCT, a DSSE
envelope, a transparency-log entry with a signed entry timestamp, a one-leaf inclusion proof and a checkpoint).

No Sigstore service can run here (Rekor needs Trillian and a database), so this is what the ``sigstore`` package
is asked to verify; the shapes follow sigstore/protobuf-specs (bundle, trusted root), RFC 6962 (SCT, Merkle
leaf hash), the signed-note checkpoint format, and Rekor's dsse v0.0.1 entry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass, field

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from apprelease.trust.statement import INTOTO_PAYLOAD_TYPE, pae

_SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_START = "2020-01-01T00:00:00Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass
class PrivateSigstore:
    name: str = "Test Fulcio"
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    log_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        public = self.ca_key.public_key()
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def _log(self, key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki(key.public_key())),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": _START},
            },
            "logId": {"keyId": _b64(_key_id(key.public_key()))},
        }

    def trusted_root(self) -> str:
        """The ``trusted_root.json`` text for this instance."""
        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [self._log(self.log_key, "https://rekor.test")],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "test", "commonName": self.name},
                        "uri": "https://fulcio.test",
                        "certChain": {
                            "certificates": [{"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}]
                        },
                        "validFor": {"start": _START},
                    }
                ],
                "ctlogs": [self._log(self.ct_key, "https://ctfe.test")],
                "timestampAuthorities": [],
            }
        )

    def _leaf(self, key: ec.EllipticCurvePrivateKey, issuer: str, subject: str, sct: bytes) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        public = key.public_key()
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        sct_der = bytes([0x04, len(sct_list)]) if len(sct_list) < 128 else bytes([0x04, 0x81, len(sct_list)])
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(public)
            .serial_number(1234567)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(subject)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(_ISSUER_V1, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(_ISSUER_V2, _utf8(issuer)), critical=False)
            .add_extension(x509.UnrecognizedExtension(_SCT_OID, sct_der + sct_list), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def _sct(self, tbs: bytes, timestamp_ms: int) -> bytes:
        """An RFC 6962 precertificate SCT over ``tbs`` (the leaf's TBS without the SCT extension)."""
        issuer_key_hash = _key_id(self.ca_key.public_key())
        signed_entry = issuer_key_hash + struct.pack("!I", len(tbs))[1:] + tbs
        signed = struct.pack(f"!BBQH{len(signed_entry)}sH", 0, 0, timestamp_ms, 1, signed_entry, 0)
        signature = _sign(self.ct_key, signed)
        return (
            struct.pack("!B32sQH", 0, _key_id(self.ct_key.public_key()), timestamp_ms, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )

    def certificate(self, key: ec.EllipticCurvePrivateKey, issuer: str, subject: str) -> x509.Certificate:
        timestamp_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        placeholder = self._leaf(key, issuer, subject, self._sct(b"", timestamp_ms))
        # The SCT signs the TBS without the SCT extension; a placeholder SCT of the same length gives those bytes.
        return self._leaf(key, issuer, subject, self._sct(placeholder.tbs_precertificate_bytes, timestamp_ms))

    def bundle(self, payload: bytes, issuer: str, subject: str) -> bytes:
        """A keyless bundle v0.3: DSSE over ``payload``, signed by a fresh key certified for ``subject``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.certificate(key, issuer, subject)
        signature = _sign(key, pae(INTOTO_PAYLOAD_TYPE, payload))
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [
                        {"signature": _b64(signature), "verifier": _b64(cert.public_bytes(serialization.Encoding.PEM))}
                    ],
                },
            },
            separators=(",", ":"),
        ).encode()
        log_id = _key_id(self.log_key.public_key())
        integrated = int(dt.datetime.now(dt.UTC).timestamp())
        canonical = rfc8785.dumps(
            {"body": _b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0}
        )
        root = hashlib.sha256(b"\x00" + body).digest()  # a one-leaf tree: the root is the leaf hash
        note = f"rekor.test - 1\n1\n{_b64(root)}\n"
        checkpoint = note + f"\n\u2014 rekor.test {_b64(log_id[:4] + _sign(self.log_key, note.encode()))}\n"
        entry = {
            "logIndex": "0",
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.log_key, canonical))},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }
        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {
                    "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                    "tlogEntries": [entry],
                },
                "dsseEnvelope": {
                    "payload": _b64(payload),
                    "payloadType": INTOTO_PAYLOAD_TYPE,
                    "signatures": [{"sig": _b64(signature), "keyid": ""}],
                },
            }
        ).encode()
