"""Running the app under uvicorn: in the foreground (the CLI) or in a background thread (notebooks, tests,
benchmarks). The listening socket is bound first, so port 0 gets a free port and the address printed is the real
one."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from .errors import ServeError

STARTUP_TIMEOUT = 30.0
"""Seconds a background server may take to start accepting connections."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _server(app, log_level: str) -> uvicorn.Server:
    # h11, not httptools: the pure-Python parser is always installed and fast enough for a search page
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, http="h11", timeout_keep_alive=30))


def run_forever(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until interrupted."""
    _server(app, log_level).run(sockets=[sock])


class BackgroundServer:
    """``with BackgroundServer(app) as server: requests to server.url`` — uvicorn in a daemon thread, stopped on
    exit. ``port`` 0 (the default) picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.sock = listen(host, port)
        self.url = url_of(self.sock)
        self._server = _server(app, log_level)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                        name="omniembed-serve")

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(self.url, f"the search server did not start within {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()
