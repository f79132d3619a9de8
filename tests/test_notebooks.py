"""The example notebooks run top to bottom, offline, in this interpreter's environment, and draw their figures inline.

They share one trained OmniDigits model through ``$OMNIEMBED_EXAMPLES_CACHE``: here a fresh directory per test
session, so the first notebook trains it (about 2 minutes on an idle 2-core CPU) and the others reuse it. Set the
variable to reuse a cache across sessions.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from conftest import SHARED

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
KERNEL_NAME = "omniembed-examples"
CELL_TIMEOUT_S = 1200
"""Generous: the longest cell trains the shared model, which takes several times longer on a busy machine."""


@pytest.fixture(scope="session")
def kernel_manager_factory(tmp_path_factory):
    """Kernel managers for a kernelspec that runs ``sys.executable`` — not whatever ``python3`` kernel the user has
    installed — with the offline settings, the shared cache and (when present) ../shared/data's MNIST and FSDD in
    its environment."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    cache = os.environ.get("OMNIEMBED_EXAMPLES_CACHE") or str(tmp_path_factory.mktemp("examples-cache"))
    specs = tmp_path_factory.mktemp("kernels")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMNIEMBED_EXAMPLES_CACHE": cache, "OMNIEMBED_SHARED_DATA": str(SHARED / "data")}
    write_kernel_spec(specs / KERNEL_NAME, overrides={"display_name": KERNEL_NAME, "env": env})
    specs_manager = KernelSpecManager(kernel_dirs=[str(specs)])
    return lambda: KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs_manager)


def test_there_are_the_four_example_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_cross_modal_search.ipynb",
                                           "03_align_a_new_modality.ipynb", "04_embedding_arithmetic.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_its_figures(path, kernel_manager_factory):
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, km=kernel_manager_factory(), timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(EXAMPLES)}})
    # raises CellExecutionError, naming the cell, on the first error; the kernel is ours to stop (nbclient leaves
    # a kernel it did not create running) and its connection file ours to delete
    client.execute(cleanup_kc=True)

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn inline"
