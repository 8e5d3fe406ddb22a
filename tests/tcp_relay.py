"""A TCP relay between a client and a server that can cut the network on demand.

``TcpRelay(("127.0.0.1", port))`` accepts on a loopback port of its own and relays each
connection to the target, byte for byte, both ways (one thread per direction).
``cut()`` resets every relayed connection and refuses new ones (each is accepted and
reset at once, as a firewall that rejects would) until ``restore()``: the client sees
the network fail mid-request, as on a real cut, while the server keeps running.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Any

_CHUNK = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (no orderly FIN): the peer's next call fails."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Link:
    """One relayed connection: the client's socket and the target's."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.open_directions = 2
        self.closed = False


class TcpRelay:
    """Relays loopback connections to ``target``; ``cut()`` / ``restore()`` the link."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.refused = 0  # connections turned away while cut
        self.relayed = 0  # connections relayed to the target
        self._cut = False
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, base_url: str = "/") -> str:
        """``http://127.0.0.1:<port><base_url>``: the target's URL through the relay."""
        return f"http://127.0.0.1:{self.port}{base_url}"

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        self._drop_all()

    def cut(self) -> None:
        """Reset every relayed connection; refuse new ones until ``restore``."""
        with self._lock:
            self._cut = True
        self._drop_all()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _drop_all(self) -> None:
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            self._close(link, reset=True)

    def _close(self, link: _Link, *, reset: bool) -> None:
        with self._lock:
            if link.closed:
                return
            link.closed = True
            self._links.discard(link)
        for sock in link.sockets:
            if reset:
                _reset(sock)
            else:
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                cut = self._cut
            if cut:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            link = _Link(client, upstream)
            with self._lock:
                added = not self._cut
                if added:
                    self._links.add(link)
                    self.relayed += 1
            if not added:  # cut while connecting
                self.refused += 1
                self._close(link, reset=True)
                continue
            for source, sink in (link.sockets, link.sockets[::-1]):
                threading.Thread(target=self._pump, args=(link, source, sink),
                                 name="tcp-relay-pump", daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until it ends (passed on as an orderly end) or
        breaks (both sides reset); the connection is closed when both directions ended."""
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(link, reset=True)
            return
        with self._lock:
            link.open_directions -= 1
            done = link.open_directions == 0
        if done:
            self._close(link, reset=False)
