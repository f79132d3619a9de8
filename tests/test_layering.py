"""The package's imports flow one way — core ← modalities ← model ← applications ← training ← command line — and
no module reaches itself through others. Read from the source with ``ast`` (nothing is imported), so a new upward or
circular import fails here with the offending lines listed, before anyone trips on it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"omniembed": REPO / "omniembed", "omniembed.modalities": REPO / "modalities",
           "omniembed.pretrain": REPO / "pretrain"}
"""Installed package → source folder (pyproject's package-dir)."""

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # the download cache and its checked, resumable downloads need only io and errors: the pretrained sources and
    # a tower's frozen weights (the speech front end's, downloaded without its package) both fetch through them
    ("core", ("omniembed.errors", "omniembed.config", "omniembed.nn", "omniembed.encoder", "omniembed.registry",
              "omniembed.model_config", "omniembed.io", "omniembed.weights", "omniembed.devices", "omniembed.extras",
              "omniembed.provenance", "omniembed.walk", "omniembed.pretrained.cache", "omniembed.pretrained.download",
              "omniembed.pretrained.errors")),
    ("modalities", ("omniembed.modalities",)),
    ("model", ("omniembed.model", "omniembed.model_card", "omniembed.embedding", "omniembed.inputs",
               "omniembed.models", "omniembed.publish")),
    # the package's own __init__ is the lazy facade (omniembed.create, .load, .Index …) over the applications
    ("applications", ("omniembed", "omniembed.api", "omniembed.pretrained", "omniembed.convert", "omniembed.index",
                      "omniembed.eval", "omniembed.datasets", "omniembed.serve")),
    # the demo and its leave-one-source-out runs train the OmniDigits recipes, so they sit with the training code
    ("training", ("omniembed.pretrain", "omniembed.demo", "omniembed.loso")),
    # the command line is the outermost shell: it dispatches to every layer, training included, and nothing imports it
    ("command line", ("omniembed.cli", "omniembed.commands")),
]


def module_files() -> dict[str, Path]:
    """Dotted module name → its source file, for every module of the three packages."""
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that names ``module``'s group."""
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}"
    return best[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(module: str, path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(imported module of ours, line) for every import that can run — at the top or inside a function — but not
    those under ``if TYPE_CHECKING:``, which only type checkers read."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:  # ``from x import y``: y may be a name defined in x, not a module
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.extend((t, child.lineno) for a in child.names if (t := resolve(a.name)))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join(base[: len(base) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if base.startswith("omniembed"):
                    for alias in child.names:
                        target = resolve(f"{base}.{alias.name}")
                        if target:
                            found.append((target, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return [(t, line) for t, line in found if t != module]


def import_graph() -> dict[str, list[tuple[str, int]]]:
    files = module_files()
    return {m: runtime_imports(m, p, set(files)) for m, p in sorted(files.items())}


def test_every_module_imports_only_its_own_layer_or_the_layers_below():
    files = module_files()
    upward = [f"{files[m].relative_to(REPO)}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports {t} "
              f"({LAYERS[layer_of(t)][0]})"
              for m, edges in import_graph().items() for t, line in edges if layer_of(t) > layer_of(m)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_module_imports_itself_through_a_circle_of_others():
    graph = {m: sorted({t for t, _ in edges}) for m, edges in import_graph().items()}
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                circles.append(" → ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            walk(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_layering_check_reports_an_upward_import_with_its_file_and_line(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from omniembed.model import X\n"
                     "def f():\n    from omniembed.pretrain.trainer import train\n")
    modules = {"omniembed.config", "omniembed.model", "omniembed.pretrain", "omniembed.pretrain.trainer"}
    edges = runtime_imports("omniembed.config", probe, modules)
    assert edges == [("omniembed.pretrain.trainer", 5)]  # the type-only import is not one
    assert [layer_of(t) > layer_of("omniembed.config") for t, _ in edges] == [True]
