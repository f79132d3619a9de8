"""``ServeConfig``: how ``omniembed serve`` listens, whom it lets in, and how much it accepts."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field, replace

from ..errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server. Defaults are the safe ones: loopback only, no token needed there."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    """Required on every API request when set (``Authorization: Bearer …``, or the cookie the page sets after
    ``/?token=…``). :meth:`secured` generates one when the server listens beyond loopback without one."""
    max_upload_bytes: int = 50 * 1024 * 1024
    max_k: int = 200
    """Most results one search may ask for."""
    max_text_chars: int = 1000
    thumbnail_size: int = 256
    """Side of the square thumbnails, pixels."""
    thumbnail_cache: int = 4096
    """Thumbnails kept in memory (PNG bytes, a few KB each)."""
    show_paths: bool | None = None
    """Whether results carry the indexed files' absolute paths (default: only on loopback)."""
    allowed_hosts: tuple[str, ...] = field(default=("127.0.0.1", "localhost", "[::1]", "::1"))
    """``Host`` headers accepted on a loopback server (refuses DNS-rebinding pages); any host when bound
    beyond loopback, where the token guards instead."""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def paths_visible(self) -> bool:
        return self.loopback if self.show_paths is None else self.show_paths

    def validate(self) -> "ServeConfig":
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve: port must be 0–65535, got {self.port}")
        for name in ("max_upload_bytes", "max_k", "max_text_chars", "thumbnail_size", "thumbnail_cache"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve: {name} must be at least 1, got {getattr(self, name)}")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("serve: a token must be at least 8 characters")
        return self

    def secured(self) -> "ServeConfig":
        """This config, with a fresh random token when it listens beyond loopback without one."""
        if self.loopback or self.token:
            return self.validate()
        return replace(self, token=secrets.token_urlsafe(24)).validate()
