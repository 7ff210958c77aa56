"""A reverse proxy that counts registry requests on their way to the test bed's registry (for `make bench`).

The operator resolves images named at the proxy's address (listed as an insecure registry), so every request
it makes to "the registry" passes here and is counted by method and kind (manifests, blobs, other).

``answer(method, path)`` may answer a request itself instead of forwarding it, as registries in the field do:
e.g. HEAD with 404 while GET serves the manifest (Sonatype Nexus), or a Docker schema 1 document for a tag.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, headers, body) to send instead of forwarding; None: forward to the registry.
Answer = Callable[[str, str], "tuple[int, dict[str, str], bytes] | None"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class CountingProxy:
    def __init__(self, upstream: str, answer: Answer | None = None) -> None:
        self.upstream = upstream
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                kind = "manifests" if "/manifests/" in self.path else "blobs" if "/blobs/" in self.path else "other"
                with proxy._lock:
                    proxy._counts[f"{self.command} {kind}"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                own = answer(self.command, self.path) if answer is not None else None
                if own is not None:
                    self._send(*own)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    content = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(content)
                finally:
                    upstream.close()

            def _send(self, status: int, headers: dict[str, str], content: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.netloc = f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self) -> Counter[str]:
        """The counts since the last take, and a fresh start."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts
