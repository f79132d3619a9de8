"""PCD headers (the Point Cloud Library's format), checked before open3d reads the data.

open3d's PCD reader trusts the header: a damaged one (a field count that is not a number, an unknown DATA kind,
fewer bytes than POINTS declares) can make it read past its buffer and crash the process. :func:`check_pcd`
refuses such a file with :class:`~omniembed.errors.UnreadableInputError` first.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from omniembed.errors import UnreadableInputError

HEADER_LIMIT = 1 << 16
KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
SIZES_BY_TYPE = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}
DATA_KINDS = ("ascii", "binary", "binary_compressed")


@dataclass(frozen=True)
class PcdHeader:
    """The fields of a PCD header that say how much data follows: bytes per point, points, encoding, offset."""

    fields: tuple[str, ...]
    point_bytes: int
    points: int
    data: str
    data_offset: int


def read_pcd_header(path: Path) -> PcdHeader:
    """Parse and check a PCD header: every line known, the per-field lists of one length, sizes that fit their
    types, x/y/z present, WIDTH · HEIGHT = POINTS, a DATA kind open3d reads."""
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
    values: dict[str, list[str]] = {}
    offset = 0
    for raw in head.split(b"\n"):
        offset += len(raw) + 1
        line = raw.decode("ascii", errors="replace").strip()
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split()
        if key not in KEYS:
            raise _bad(path, f"unknown header line '{line[:60]}'")
        values[key] = rest
        if key == "DATA":
            break
    else:
        raise _bad(path, "no DATA line in the header")
    fields = tuple(values.get("FIELDS", []))
    lists = {k: values.get(k, []) for k in ("SIZE", "TYPE", "COUNT")}
    if not fields or any(len(v) != len(fields) for v in lists.values()):
        raise _bad(path, f"FIELDS, SIZE, TYPE and COUNT must list one value per field ({len(fields)} fields)")
    if not {"x", "y", "z"} <= set(fields):
        raise _bad(path, f"fields {list(fields)} lack x, y or z")
    point_bytes = 0
    for name, size, kind, count in zip(fields, lists["SIZE"], lists["TYPE"], lists["COUNT"]):
        if kind not in SIZES_BY_TYPE or not size.isdigit() or int(size) not in SIZES_BY_TYPE[kind]:
            raise _bad(path, f"field {name}: type {kind} of size {size} is not one PCD has")
        if not count.isdigit() or int(count) < 1:
            raise _bad(path, f"field {name}: COUNT '{count}' is not a positive integer")
        point_bytes += int(size) * int(count)
    numbers = {k: _positive(path, k, values.get(k)) for k in ("WIDTH", "HEIGHT", "POINTS")}
    if numbers["WIDTH"] * numbers["HEIGHT"] != numbers["POINTS"]:
        raise _bad(path, f"WIDTH {numbers['WIDTH']} × HEIGHT {numbers['HEIGHT']} ≠ POINTS {numbers['POINTS']}")
    data = values["DATA"][0] if values["DATA"] else ""
    if data not in DATA_KINDS:
        raise _bad(path, f"DATA '{data}' is not one of {', '.join(DATA_KINDS)}")
    return PcdHeader(fields, point_bytes, numbers["POINTS"], data, min(offset, len(head)))


def check_pcd(path: Path) -> PcdHeader:
    """Check the header and that the file holds the data it declares; return the header."""
    header = read_pcd_header(path)
    body = path.stat().st_size - header.data_offset
    if header.data == "binary" and body < header.points * header.point_bytes:
        raise _bad(path, f"truncated: {header.points} points need {header.points * header.point_bytes} bytes, "
                         f"the file holds {body}")
    if header.data == "binary_compressed":
        with open(path, "rb") as f:
            f.seek(header.data_offset)
            sizes = f.read(8)
        if len(sizes) < 8:
            raise _bad(path, "truncated: no compressed-size words after the header")
        compressed, uncompressed = struct.unpack("<II", sizes)
        if uncompressed != header.points * header.point_bytes or compressed > body - 8:
            raise _bad(path, f"compressed data sizes ({compressed} → {uncompressed} bytes) do not fit "
                             f"{header.points} points of {header.point_bytes} bytes in {body - 8} bytes")
    if header.data == "ascii":
        with open(path, "rb") as f:
            f.seek(header.data_offset)
            lines = sum(1 for line in f if line.strip())
        if lines < header.points:
            raise _bad(path, f"truncated: the header declares {header.points} points, the file holds {lines} lines")
    return header


def _positive(path: Path, key: str, words: list[str] | None) -> int:
    if not words or not words[0].isdigit() or int(words[0]) < 1:
        raise _bad(path, f"{key} {' '.join(words or []) or '(missing)'} is not a positive integer")
    return int(words[0])


def _bad(path: Path, reason: str) -> UnreadableInputError:
    return UnreadableInputError(str(path), f"damaged PCD file: {reason}")
