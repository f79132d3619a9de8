"""Walking a loader sample: tensors and arrays held in dataclasses, dicts, lists and tuples (``AudioClips``,
``VideoSample``, a video's dict, a share's lists)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


def map_leaves(tree: Any, fn: Callable[[Any], Any], leaf: type | tuple[type, ...]) -> Any:
    """``tree`` rebuilt with ``fn`` applied to each instance of ``leaf``; other leaves are kept as they are."""
    if isinstance(tree, leaf):
        return fn(tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return dataclasses.replace(tree, **{f.name: map_leaves(getattr(tree, f.name), fn, leaf)
                                            for f in dataclasses.fields(tree) if f.init})
    if isinstance(tree, dict):
        return {k: map_leaves(v, fn, leaf) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_leaves(v, fn, leaf) for v in tree)
    return tree
