"""Attaching an artifact to an image as an OCI 1.1 referrer, as cosign v3 does: for ``apprelease build --sign``.

Steps (OCI distribution-spec 1.1): upload the empty config and the layer blob (monolithic ``POST`` + ``PUT``,
skipped when ``HEAD`` finds the blob), ``PUT`` the artifact manifest (``subject`` = the image) by digest, then,
unless the registry answers the referrers API, add a descriptor to the referrers tag ``sha256-<hex>`` (the
fallback schema cosign and oras use; the Debian registry needs it).

CLI only: the user's own registry, with the user's docker credentials (``registry.auth``, push scope). Replies
are bounded; no redirect is followed with credentials (httpx does not follow redirects here).
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from typing import TypedDict

import certifi
import httpx

from ..reference import Reference, registry_api_host
from . import jsonbounds, oci
from .auth import AuthMemory, RegistryAuth, Target
from .credentials import Credential
from .errors import RegistryError, TagNotFound
from .hops import HopRules, is_loopback_host

__all__ = ["EMPTY_CONFIG", "Attached", "Descriptor", "Pusher"]

EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
_MAX_REPLY = 1024 * 1024
_MAX_INDEX_ENTRIES = 1024


@dataclass(frozen=True)
class _PushTarget(Target):
    @property
    def scope(self) -> str:
        return f"repository:{self.path}:pull,push"


@dataclass(frozen=True)
class Attached:
    """The referrer manifest pushed: its digest, and how the registry lists it (``api`` or ``tag``)."""

    digest: str
    listed_by: str


class Descriptor(TypedDict):
    """An OCI content descriptor (image-spec descriptor.md): what a referrer's ``subject`` names."""

    mediaType: str
    digest: str
    size: int


class _IndexEntry(Descriptor):
    """A referrer's entry in the referrers tag's index (distribution-spec 1.1, referrers tag schema)."""

    artifactType: str
    annotations: dict[str, str]


class Pusher:
    """Pushes referrer artifacts to one repository. ``insecure``: hosts reached over plain http."""

    def __init__(
        self,
        repository: Reference,
        credential: Credential | None,
        *,
        insecure: list[str] | None = None,
        ca_bundle: str | None = None,
        timeout_seconds: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        scheme = "http" if repository.domain in set(insecure or []) else "https"
        base = f"{scheme}://{registry_api_host(repository.domain)}"
        loopback = is_loopback_host(httpx.URL(base).host)
        self._target = _PushTarget(
            domain=repository.domain,
            path=repository.path,
            base_url=base,
            rules=HopRules(frozenset(insecure or []), loopback_ok=loopback),
        )
        context = ssl.create_default_context(cafile=certifi.where())
        if ca_bundle:
            context.load_verify_locations(cafile=ca_bundle)
        self._http = httpx.Client(
            auth=RegistryAuth(self._target, credential, AuthMemory(time.monotonic)),
            verify=context,
            transport=transport,
            timeout=timeout_seconds,
            follow_redirects=False,
            headers={"User-Agent": "apprelease", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------------------

    def descriptor(self, digest: str) -> Descriptor:
        """The image manifest's descriptor (media type, digest, size), for a referrer's ``subject``."""
        reply = self._send("GET", self._target.url("manifests", digest), accept=oci.MANIFEST_ACCEPT)
        if reply.status_code == 404:
            raise TagNotFound(f"manifest {digest} not found in {self._target.repository}")
        self._ok(reply, f"manifest {digest}")
        if oci.content_digest("sha256", reply.content) != digest:
            raise RegistryError(f"manifest {digest} in {self._target.repository} does not hash to its digest")
        content_type = reply.headers.get("content-type", "").split(";")[0].strip()
        try:
            media_type = oci.parse_manifest(reply.content, content_type, _MAX_REPLY, _MAX_INDEX_ENTRIES).media_type
        except (ValueError, oci.Unsupported):
            raise RegistryError(f"manifest {digest} in {self._target.repository} is not an image manifest") from None
        return Descriptor(mediaType=media_type, digest=digest, size=len(reply.content))

    def attach(
        self,
        subject: Descriptor,
        artifact_type: str,
        layer: bytes,
        annotations: dict[str, str],
    ) -> Attached:
        """Push ``layer`` (of media type ``artifact_type``) as a referrer of ``subject``."""
        self._blob(EMPTY_CONFIG)
        layer_digest = self._blob(layer)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": _sha(EMPTY_CONFIG), "size": len(EMPTY_CONFIG)},
                "layers": [{"mediaType": artifact_type, "digest": layer_digest, "size": len(layer)}],
                "subject": subject,
                "annotations": annotations,
            },
            separators=(",", ":"),
        ).encode()
        digest = _sha(manifest)
        self._put_manifest(digest, manifest, oci.OCI_MANIFEST)
        entry: _IndexEntry = {
            "mediaType": oci.OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": artifact_type,
            "annotations": annotations,
        }
        api = self._send("GET", self._target.url("referrers", subject["digest"]), accept=oci.OCI_INDEX)
        if api.status_code == 200 and api.headers.get("content-type", "").startswith(oci.OCI_INDEX):
            return Attached(digest, "api")
        self._add_to_referrers_tag(subject["digest"], entry)
        return Attached(digest, "tag")

    # -- parts ----------------------------------------------------------------------------------------

    def _add_to_referrers_tag(self, subject_digest: str, entry: _IndexEntry) -> None:
        tag = subject_digest.replace(":", "-", 1)
        reply = self._send("GET", self._target.url("manifests", tag), accept=oci.OCI_INDEX)
        manifests: list[object] = []  # the tag's entries as the registry wrote them (objects; kept as they are)
        if reply.status_code == 200:
            document = jsonbounds.load(reply.content, max_bytes=_MAX_REPLY)
            found = document.get("manifests") if isinstance(document, dict) else None
            kept = found if isinstance(found, list) else []
            manifests = [m for m in kept if isinstance(m, dict) and m.get("digest") != entry["digest"]]
        elif reply.status_code != 404:
            self._ok(reply, f"referrers tag {tag}")
        if len(manifests) >= _MAX_INDEX_ENTRIES:
            raise RegistryError(f"referrers tag {tag} in {self._target.repository} lists too many artifacts")
        index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [*manifests, entry]}
        self._put_manifest(tag, json.dumps(index, separators=(",", ":")).encode(), oci.OCI_INDEX)

    def _blob(self, content: bytes) -> str:
        digest = _sha(content)
        if self._send("HEAD", self._target.url("blobs", digest)).status_code == 200:
            return digest
        start = self._send("POST", f"{self._target.base_url}/v2/{self._target.path}/blobs/uploads/")
        self._ok(start, "blob upload", codes=(202,))
        location = httpx.URL(start.headers.get("location", ""))
        upload = httpx.URL(self._target.base_url).join(location)
        if upload.host != httpx.URL(self._target.base_url).host:
            raise RegistryError(f"registry {self._target.domain} sent a blob upload location on another host")
        put = self._send(
            "PUT",
            str(upload.copy_merge_params({"digest": digest})),
            content=content,
            content_type="application/octet-stream",
        )
        self._ok(put, f"blob {digest}", codes=(201,))
        return digest

    def _put_manifest(self, reference: str, content: bytes, media_type: str) -> None:
        reply = self._send("PUT", self._target.url("manifests", reference), content=content, content_type=media_type)
        self._ok(reply, f"manifest {reference}", codes=(201,))

    def _send(
        self,
        method: str,
        url: str,
        *,
        accept: str | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        try:
            with self._http.stream(method, url, headers=headers, content=content) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_REPLY:
                        raise RegistryError(f"registry {self._target.domain} sent a reply over {_MAX_REPLY} bytes")
                return httpx.Response(response.status_code, headers=response.headers, content=body)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self._target.domain} unreachable: {type(exc).__name__}") from None

    def _ok(self, reply: httpx.Response, what: str, codes: tuple[int, ...] = (200,)) -> None:
        if reply.status_code not in codes:
            detail = ", ".join(oci.error_codes(reply.content))
            raise RegistryError(
                f"registry {self._target.domain} refused {what} in {self._target.repository}: "
                f"HTTP {reply.status_code}{f' ({detail})' if detail else ''}"
            )


def _sha(content: bytes) -> str:
    return oci.content_digest("sha256", content)
