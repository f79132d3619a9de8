"""Who may call the server and how much they may send: the token check and the request-body limit."""

from __future__ import annotations

import json
import secrets

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .config import ServeConfig
from .errors import UnauthorizedError

COOKIE = "omniembed_token"
bearer = HTTPBearer(auto_error=False, description="the token `omniembed serve` printed (needed when it listens "
                                                  "beyond 127.0.0.1)")


def token_matches(config: ServeConfig, given: str | None) -> bool:
    return config.token is None or (given is not None and secrets.compare_digest(given.encode(), config.token.encode()))


def require_token(config: ServeConfig):
    """A FastAPI dependency: the request carries the token (bearer header or the page's cookie), or 401."""

    def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials is not None else request.cookies.get(COOKIE)
        if not token_matches(config, given):
            raise UnauthorizedError(f"{request.method} {request.url.path}",
                                    "this server needs its token (Authorization: Bearer TOKEN, or open the page "
                                    "as /?token=TOKEN)")

    return check


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with 413 before it is read, and a body
    without a declared length with 411 (the length is then enforced by the HTTP server's framing)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None and headers.get(b"transfer-encoding"):
            return await _refuse(send, 411, "LengthRequiredError", "request body",
                                 "send a Content-Length (chunked uploads are refused)")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _refuse(send, 413, "UploadTooLargeError", "request body",
                                 f"{length.decode(errors='replace')} bytes is over the limit of {self.limit} bytes")
        return await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """A ``Host`` header without its port: ``127.0.0.1:8000`` → ``127.0.0.1``, ``[::1]:8000`` → ``[::1]``."""
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


class LocalHostsOnly:
    """ASGI middleware for a loopback server: a request whose ``Host`` is not one of ``hosts`` (port aside) gets a
    JSON 400 — a page on another site that re-points its own name at 127.0.0.1 (DNS rebinding) cannot read the
    API."""

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host_name(host) not in self.hosts:
            return await _refuse(send, 400, "UntrustedHostError", f"Host {host or '(none)'}",
                                 "this server answers only to local names (it listens on loopback)")
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, kind: str, where: str, reason: str) -> None:
    body = json.dumps({"error": {"type": kind, "input": where, "message": f"{where}: {reason}"}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
