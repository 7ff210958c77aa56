"""Connection pools for registry requests: one ``GuardedTransport`` per address policy, sharing one TLS
context (certifi's CAs plus the operator's CA bundle) and one resolver. A pool per policy means a
connection opened for a registry's own host is never reused for another registry's hop."""

from __future__ import annotations

import ssl
import threading

import certifi
import httpcore
import httpx

from .errors import RegistryError
from .network import AddressPolicy, GuardedTransport, Resolver

__all__ = ["Transports"]


class Transports:
    """``override`` (a test's in-process transport) replaces every pool."""

    def __init__(
        self,
        ca_bundle: str | None,
        resolver: Resolver,
        backend: httpcore.NetworkBackend | None = None,
        override: httpx.BaseTransport | None = None,
    ) -> None:
        self._override = override
        self._resolver = resolver
        self._backend = backend
        self._ssl = None if override is not None else self._ssl_context(ca_bundle)
        self._pools: dict[AddressPolicy, httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def for_policy(self, policy: AddressPolicy) -> httpx.BaseTransport:
        if self._override is not None:
            return self._override
        with self._lock:
            transport = self._pools.get(policy)
            if transport is None:
                assert self._ssl is not None
                transport = self._pools[policy] = GuardedTransport(self._ssl, policy, self._resolver, self._backend)
            return transport

    def close(self) -> None:
        with self._lock:
            for transport in self._pools.values():
                transport.close()
            self._pools.clear()
        if self._override is not None:
            self._override.close()

    @staticmethod
    def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certifi.where())
        if ca_bundle:
            try:
                context.load_verify_locations(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot load CA bundle {ca_bundle!r}: {exc}") from exc
        return context
