"""PLY headers, and whether a PLY file holds all the data its header declares.

open3d reads a truncated PLY without an error: the points it could not read come back as uninitialised memory
(binary) or zeros (ASCII), and it only prints "RPly: Unexpected end of file". So before open3d reads a file,
:func:`check_complete` compares the data the header declares with what the file holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from omniembed.errors import UnreadableInputError

HEADER_LIMIT = 1 << 16
"""Bytes read to find ``end_header``: a header longer than this is refused (real ones are a few hundred)."""
TYPE_SIZES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
              "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
MIN_FACE_INDICES = 3
"""A face lists at least three vertex indices: the least a binary face can take, to bound a file's size."""


@dataclass
class PlyProperty:
    """One property of an element: a scalar of ``type``, or (``count_type`` set) a list of ``type``."""

    name: str
    type: str
    count_type: str | None = None

    def min_bytes(self, element: str) -> int:
        """The fewest bytes one value takes in a binary file."""
        if self.count_type is None:
            return TYPE_SIZES[self.type]
        least = MIN_FACE_INDICES if element == "face" else 0
        return TYPE_SIZES[self.count_type] + least * TYPE_SIZES[self.type]


@dataclass
class PlyElement:
    """An element (``vertex``, ``face`` …): how many the file holds and the properties of each."""

    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)


@dataclass
class PlyHeader:
    """A parsed header: the data format, the elements in file order, and where the data starts (bytes)."""

    format: str
    elements: list[PlyElement]
    data_offset: int

    def count(self, element: str) -> int:
        """How many of ``element`` the header declares (0 when it declares none)."""
        return sum(e.count for e in self.elements if e.name == element)


def read_header(path: Path) -> PlyHeader:
    """Parse the (always ASCII) header of a PLY file; a malformed one raises :class:`UnreadableInputError`."""
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
    if not head.startswith(b"ply"):
        raise UnreadableInputError(str(path), "not a PLY file (no 'ply' magic number)")
    end = head.find(b"end_header")
    newline = head.find(b"\n", end)
    if end < 0 or newline < 0:
        raise UnreadableInputError(str(path), "PLY header has no end_header line")
    fmt, elements = None, []
    for number, line in enumerate(head[:end].decode("ascii", errors="replace").splitlines()[1:], start=2):
        words = line.split()
        try:
            if words and words[0] == "format":
                fmt = words[1]
            elif words and words[0] == "element":
                elements.append(PlyElement(words[1], _count(words[2])))
            elif words and words[0] == "property":
                prop = (PlyProperty(words[4], words[3], words[2]) if words[1] == "list" else
                        PlyProperty(words[2], words[1]))
                if prop.type not in TYPE_SIZES or (prop.count_type or "int") not in TYPE_SIZES:
                    raise ValueError(f"unknown type in '{line}'")
                elements[-1].properties.append(prop)
        except (IndexError, ValueError) as exc:
            raise UnreadableInputError(str(path), f"malformed PLY header line {number} '{line}' ({exc})") from None
    if fmt not in FORMATS:
        raise UnreadableInputError(str(path), f"PLY format '{fmt}' is not one of {', '.join(FORMATS)}")
    return PlyHeader(fmt, elements, newline + 1)


def _count(word: str) -> int:
    if not word.isdigit():
        raise ValueError(f"element count '{word}' is not a non-negative integer")
    return int(word)


def check_complete(path: Path, header: PlyHeader) -> None:
    """Raise :class:`UnreadableInputError` when the file is shorter than its header declares: in a binary file
    fewer bytes than the elements need (faces counted at their smallest), in an ASCII file fewer lines than
    elements, or a last vertex line with fewer values than the vertex has properties. (An ASCII file cut inside
    its last number cannot be told from one holding a shorter number.)"""
    size = path.stat().st_size - header.data_offset
    if header.format != "ascii":
        need, offset = 0, 0
        for element in header.elements:
            each = sum(p.min_bytes(element.name) for p in element.properties)
            need += element.count * each
            if element.name == "vertex" and need > size:
                whole = max(0, (size - offset) // each) if each else 0
                raise UnreadableInputError(str(path), f"truncated PLY: the header declares {element.count} "
                                                      f"vertices, the file holds {min(whole, element.count)}")
            offset = need
        if need > size:
            raise UnreadableInputError(str(path), f"truncated PLY: its elements need at least {need} bytes of "
                                                  f"data, the file holds {size}")
        return
    starts = list(itertools.accumulate((e.count for e in header.elements), initial=0))  # first data lines
    vertex = next((i for i, e in enumerate(header.elements) if e.name == "vertex" and e.count), None)
    last_vertex = starts[vertex + 1] - 1 if vertex is not None else -1
    held, last_vertex_values = 0, 0
    with open(path, "rb") as f:  # streamed: an ASCII cloud may be large
        f.seek(header.data_offset)
        for line in f:
            if line.strip():
                if held == last_vertex:
                    last_vertex_values = len(line.split())
                held += 1
    for element, first in zip(header.elements, starts):
        if held - first < element.count:
            raise UnreadableInputError(str(path), f"truncated PLY: the header declares {element.count} "
                                                  f"{element.name} lines, the file holds {max(0, held - first)}")
    if vertex is not None and last_vertex_values < len(header.elements[vertex].properties):
        raise UnreadableInputError(str(path), f"truncated PLY: the last vertex line has {last_vertex_values} values "
                                              f"for {len(header.elements[vertex].properties)} properties")
