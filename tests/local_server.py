"""A file server on 127.0.0.1 for download tests: HTTP Range support, a switch to cut the connection mid-file,
and a log of every request's path and Range header."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LocalFileServer:
    """Serves the files of ``root`` at ``http://127.0.0.1:<port>/<name>``.

    ``cut_after``: {name: byte count} — the next response for ``name`` announces the full length but the
    connection is closed after that many bytes (one cut per entry, removed once used).
    ``requests``: [(path, Range header or None)] in arrival order. Responses carry a strong ETag (the content's
    sha256); a Range request whose ``If-Range`` names another ETag gets the whole file (RFC 9110).
    """

    def __init__(self, root: Path):
        self.root = root
        self.cut_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                start, status = 0, 200
                spec = self.headers.get("Range")
                if self.headers.get("If-Range") not in (None, etag):
                    spec = None  # the file changed since the client's partial copy
                if spec and not server.ignore_range:
                    start = int(spec.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> "LocalFileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(name: str) -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was bound, then released): a network that is down."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"
