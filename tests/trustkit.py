"""Signing helpers for the trust tests: keys generated in the test (cryptography), cosign-shaped artifacts."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from apprelease.trust import BundleArtifact, LegacyArtifact, PublicKey, load_public_key
from apprelease.trust.sign import PrivateKey, bundle, statement

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
REPO = "registry.example.com/shop/web"


def new_key(kind: str = "p256") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP384R1() if kind == "p384" else ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def trusted(key: PrivateKey, name: str = "cosign.pub") -> PublicKey:
    return load_public_key(name, public_pem(key))


def signed_bundle(key: PrivateKey, digest: str = DIGEST, **kwargs: object) -> BundleArtifact:
    return BundleArtifact(bundle(key, statement(digest, REPO, **kwargs)), origin="referrer sha256:1")  # type: ignore[arg-type]


def simple_signing(digest: str) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": REPO},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()


def legacy(key: ec.EllipticCurvePrivateKey, digest: str = DIGEST) -> LegacyArtifact:
    payload = simple_signing(digest)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return LegacyArtifact(payload, base64.b64encode(signature).decode(), None, origin="tag sha256-aaaa.sig")


def tamper(artifact: BundleArtifact, edit: dict[str, object]) -> BundleArtifact:
    """The same bundle with its statement's fields replaced (the signature left as it was)."""
    document = json.loads(artifact.content)
    payload = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    payload.update(edit)
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    return BundleArtifact(json.dumps(document).encode(), artifact.origin)
