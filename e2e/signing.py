"""Signing on the test bed: small OCI images pushed straight to the registry, and cosign run offline with a key.

cosign v3 signs offline with a signing config that names no transparency log and no timestamp authority; it
needs a writable HOME (its TUF cache) even then, and an explicit (empty) trusted root, or it tries to refresh the
public-good root over the network. Its proxy is set to a closed loopback port, so whatever it still tries to
reach outside the test bed fails on loopback; the registry is on 127.0.0.1 (NO_PROXY).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from apprelease.reference import parse
from apprelease.registry import RegistryClient, RegistrySettings
from apprelease.registry.push import Pusher
from apprelease.registry.referrers import ReferrerFinder
from e2e.support import Testbed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TRUSTED_ROOT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_CLOSED = "http://127.0.0.1:9"


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def upload_blob(registry: str, path: str, blob: bytes) -> str:
    """A monolithic blob upload (distribution-spec POST then PUT); the blob's digest."""
    start = httpx.post(f"http://{registry}/v2/{path}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = httpx.URL(f"http://{registry}").join(start.headers["location"])
    put = httpx.put(str(location.copy_merge_params({"digest": sha(blob)})), content=blob)
    assert put.status_code == 201, put.text
    return sha(blob)


def attach_legacy(registry: str, path: str, digest: str, payload: bytes, annotations: dict[str, str]) -> None:
    """Write the ``sha256-<hex>.sig`` tag as cosign v2 does: a manifest whose one layer is the simple-signing
    ``payload`` carrying ``annotations`` (signature, and keyless: certificate, chain, Rekor bundle)."""
    config = b"{}"
    upload_blob(registry, path, config)
    upload_blob(registry, path, payload)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": sha(payload),
                    "size": len(payload),
                    "annotations": annotations,
                }
            ],
        }
    ).encode()
    tag = digest.replace(":", "-") + ".sig"
    put = httpx.put(
        f"http://{registry}/v2/{path}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 201, put.text


def push_image(registry: str, path: str, tag: str, labels: dict[str, str]) -> str:
    """An image with one tiny layer and a config carrying ``labels``; returns its manifest digest."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    base = f"http://{registry}/v2/{path}"
    upload_blob(registry, path, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    put = httpx.put(f"{base}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    return sha(manifest)


BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def bundles_of(registry: str, path: str, digest: str) -> list[bytes]:
    """The Sigstore bundles referring to ``digest`` (read as the operator reads them)."""
    with RegistryClient(RegistrySettings(insecure_registries=[registry])) as client:
        return [b.content for b in ReferrerFinder(client).bundles(parse(f"{registry}/{path}"), digest)]


def attach_bundle(registry: str, path: str, digest: str, bundle: bytes) -> None:
    """Attach ``bundle`` as a referrer of ``digest``: what a pusher who copies a signature around can do."""
    with Pusher(parse(f"{registry}/{path}"), None, insecure=[registry]) as pusher:
        pusher.attach(pusher.descriptor(digest), BUNDLE, bundle, {})


def rewrite_subject(bundle: bytes, digest: str) -> bytes:
    """The bundle with its statement's subject changed to ``digest`` and the signature left as it was."""
    document = json.loads(bundle)
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    algorithm, _, value = digest.partition(":")
    statement["subject"] = [{"digest": {algorithm: value}}]
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(document).encode()


@dataclass
class Cosign:
    """cosign from the test bed's bin directory, with its own HOME and an offline signing config."""

    binary: Path
    home: Path
    password: str = ""  # COSIGN_PASSWORD: the password of cosign.key

    @classmethod
    def ready(cls, testbed: Testbed, home: Path, password: str = "") -> Cosign:
        binary = Path(testbed.bin_dir) / "cosign"
        if not binary.exists():
            raise AssertionError(f"cosign is not in the test bed ({binary}); e2e/testbed/build.sh builds it")
        cosign = cls(binary, home, password)
        (home / "trusted-root.json").write_text(json.dumps({"mediaType": TRUSTED_ROOT}))
        cosign.run("signing-config", "create", "--out", str(home / "signing-config.json"))
        cosign.run("generate-key-pair", cwd=home)
        return cosign

    @property
    def key(self) -> Path:
        return self.home / "cosign.key"

    @property
    def public_key(self) -> Path:
        return self.home / "cosign.pub"

    def run(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "COSIGN_PASSWORD": self.password,
            "COSIGN_YES": "true",
            "HTTPS_PROXY": _CLOSED,
            "HTTP_PROXY": _CLOSED,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        result = subprocess.run(
            [str(self.binary), *args], cwd=cwd or self.home, env=env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cosign {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result

    @property
    def offline(self) -> list[str]:
        """Flags every registry command takes here: the empty trusted root, plain http to the test bed."""
        return ["--trusted-root", str(self.home / "trusted-root.json"), "--allow-http-registry"]

    def sign(self, image: str, *, legacy: bool = False, key: Path | None = None) -> None:
        """`cosign sign`: a Sigstore bundle referrer, or (legacy) the simple-signing `.sig` tag."""
        if legacy:
            mode = ["--new-bundle-format=false", "--tlog-upload=false", "--use-signing-config=false"]
        else:
            mode = ["--signing-config", str(self.home / "signing-config.json")]
        self.run("sign", "--key", str(key or self.key), *self.offline, *mode, image)

    def verify(self, image: str, public_key: Path) -> subprocess.CompletedProcess[str]:
        return self.run("verify", "--key", str(public_key), "--insecure-ignore-tlog=true", *self.offline, image)

    def verify_attestation(self, image: str, public_key: Path) -> subprocess.CompletedProcess[str]:
        return self.run(
            "verify-attestation",
            "--key",
            str(public_key),
            "--insecure-ignore-tlog=true",
            *self.offline,
            "--type",
            "slsaprovenance1",
            image,
        )

    def attest(self, image: str, predicate: dict[str, object], *, key: Path | None = None) -> None:
        path = self.home / "predicate.json"
        path.write_text(json.dumps(predicate))
        signing_config = str(self.home / "signing-config.json")
        self.run(
            "attest",
            "--key",
            str(key or self.key),
            *self.offline,
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(path),
            "--signing-config",
            signing_config,
            image,
        )
