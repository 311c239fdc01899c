"""A TCP relay that holds every chunk back a fixed time in each direction: a Redis "on another host".

Run: ``python bench/delay_relay.py UPSTREAM_HOST UPSTREAM_PORT ONE_WAY_MS``; it prints the port it
listens on (127.0.0.1), then relays until killed. Each chunk is written ``ONE_WAY_MS`` after it was read,
in order, so a round trip through it takes about twice that longer than without it. Threads and
``time.sleep`` rather than an event loop: event-loop timers round up to whole milliseconds. It runs in a
process of its own, so its work is not counted in the benchmark's process CPU time (it does share the
machine's cores).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time


def carry(source: socket.socket, sink: socket.socket, delay: float) -> None:
    held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def write() -> None:
        with contextlib.suppress(OSError):  # the other side went away: the connection is over
            while True:
                due, chunk = held.get()
                if not chunk:
                    sink.shutdown(socket.SHUT_WR)
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sink.sendall(chunk)

    threading.Thread(target=write, daemon=True).start()
    chunk = b"-"
    while chunk:
        try:
            chunk = source.recv(65536)
        except OSError:
            chunk = b""
        held.put((time.perf_counter() + delay, chunk))


def serve(client: socket.socket, upstream: tuple[str, int], delay: float) -> None:
    server = socket.create_connection(upstream)
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=carry, args=(client, server, delay), daemon=True).start()
    threading.Thread(target=carry, args=(server, client, delay), daemon=True).start()


def main(host: str, port: int, one_way_ms: float) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        serve(client, (host, port), one_way_ms / 1000)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
