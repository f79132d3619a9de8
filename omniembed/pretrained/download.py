"""HTTP downloads a user can trust: progress bar, resume of a partial file by HTTP Range, size and sha256 checked
before the file is moved into place, nothing left behind on a mismatch, and an offline error that says where to
put the file by hand.

The file grows as ``<dest>.part``; only a complete, verified file is renamed to ``<dest>``, so a file at ``dest``
was either verified here or placed there by the user (and is then checked before use, see :func:`fetch`). The
server's validator (a strong ETag, else Last-Modified) is kept in ``<dest>.part.validator`` and sent as
``If-Range`` when resuming: a file that changed on the server since is fetched whole instead of being spliced.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..io import file_sha256
from .errors import DownloadError, IntegrityError, OfflineError

CHUNK = 1 << 20
TIMEOUT_S = 60.0
RETRIES = 3
"""A connection cut mid-file is resumed this many times before giving up (the partial file is kept)."""


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, size: int | None = None,
          progress: bool | None = None, retries: int = RETRIES) -> str:
    """Download ``url`` to ``dest`` (or check the file already there) and return its sha256 (hex).

    ``sha256`` / ``size``: expected values, checked before ``dest`` exists; ``None`` where unpublished (a
    download must then still match the server's length). ``progress``: a tqdm bar (None: only on a terminal).
    Raises :class:`OfflineError` when the server cannot be reached, :class:`IntegrityError` on a wrong size or
    digest (the download is deleted), :class:`DownloadError` when the connection keeps breaking (the partial
    file is kept and the next call resumes it).
    """
    dest = Path(dest)
    if dest.is_file():
        return verify(dest, sha256, size, origin=f"{dest} (already in the cache)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    validator = dest.with_name(dest.name + ".part.validator")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, validator, dest, sha256, progress)
            break
        except _Interrupted as cut:
            if attempt == retries:
                total = f"{cut.total:,}" if cut.total is not None else "?"
                raise DownloadError(f"{url}: connection broke at {cut.received:,} of {total} bytes (attempt "
                                    f"{attempt + 1} of {retries + 1}); the partial file {part} is kept and the "
                                    f"next attempt resumes it") from cut.__cause__
    try:
        digest = verify(part, sha256, size, origin=url)
    except IntegrityError:
        part.unlink(missing_ok=True)
        raise
    finally:
        validator.unlink(missing_ok=True)
    os.replace(part, dest)
    return digest


def verify(path: Path, sha256: str | None, size: int | None, origin: str) -> str:
    """sha256 of ``path`` after checking its size and digest against the expected ones (None: not checked)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(f"{origin}: {actual:,} bytes, expected {size:,} (truncated or a different file)")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise IntegrityError(f"{origin}: sha256 {digest} does not match the expected {sha256.lower()}")
    return digest


def _write_validator(path: Path, headers: Any) -> None:
    """Keep the response's strong ETag (weak ones may not be used in If-Range), else its Last-Modified."""
    etag = headers.get("ETag")
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if value:
        path.write_text(value)
    else:
        path.unlink(missing_ok=True)


class _Interrupted(Exception):
    def __init__(self, received: int, total: int | None):
        super().__init__(f"interrupted at {received} of {total}")
        self.received = received
        self.total = total


def _transfer(url: str, part: Path, validator: Path, dest: Path, sha256: str | None, progress: bool | None) -> None:
    """Append the rest of ``url`` to ``part`` (a Range request when part has bytes, conditional on the server's
    validator when one was given); raise _Interrupted when the stream ends early."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and validator.is_file():
        headers["If-Range"] = validator.read_text()
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after `have`: the part is whole, or longer than this file
            total = exc.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and int(total) == have:
                return
            part.unlink()
            validator.unlink(missing_ok=True)
            raise _Interrupted(0, int(total) if total.isdigit() else None) from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(f"cannot reach {url} ({reason}). Without a network, download that file elsewhere and "
                           f"put it at {dest}" + (f" (sha256 {sha256})" if sha256 else "")
                           + "; it is checked before use") from exc
    with response:
        resumed = response.status == 206
        if not resumed:  # a first request, a server without ranges, or a file changed since (If-Range)
            have = 0
            _write_validator(validator, response.headers)
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        with open(part, "ab" if resumed else "wb") as out, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=dest.name, disable=None if progress is None else not progress, leave=False) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.IncompleteRead, ConnectionError, socket.timeout) as exc:
                raise _Interrupted(received, total) from exc
    if total is not None and received < total:
        raise _Interrupted(received, total)
