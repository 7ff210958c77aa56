"""A unix-socket relay in front of the test bed's Docker engine: it counts the connections that reach the
engine through it, so a test can prove that `apprelease build` used the engine a docker context names."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class EngineRelay:
    def __init__(self, listen: Path, upstream: str) -> None:
        self.listen = listen
        self.upstream = upstream.removeprefix("unix://")
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(listen))
        self._server.listen(16)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> EngineRelay:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.upstream)
            for source, sink in ((client, engine), (engine, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
