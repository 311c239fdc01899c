"""A TCP proxy of the tests' own in front of a JSON-RPC node that can be switched to black-hole: it keeps
accepting connections and reading what is sent, but nothing reaches the node and nothing comes back (a
firewall that drops packets). Threads and blocking sockets, so it runs beside any event loop.

    with BlackHoleProxy(anvil.url) as proxy:   # proxy.url forwards to anvil
        proxy.black_hole = True                # from now on every connection, old or new, goes silent
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit


class BlackHoleProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.black_hole = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BlackHoleProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            if self.black_hole:  # accept, read, never answer
                threading.Thread(target=self._pipe, args=(client, None), daemon=True).start()
                continue
            upstream = socket.create_connection(self.upstream)
            self._keep(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket | None) -> None:
        """Copy ``source`` to ``target`` until either closes; while black-holed, read and drop."""
        try:
            while data := source.recv(65536):
                if target is not None and not self.black_hole:
                    target.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            if target is not None:
                target.close()
