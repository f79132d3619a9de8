"""The real-embedding benchmark set of tools/bench_index.py: which documentation lines count, and the augmentation
that stretches the real rows to large sizes (its rows unit, near their source by the documented cosine, and shaped
by the real rows' covariance rather than isotropic noise)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("index_corpus", Path(__file__).parents[1] / "tools" / "index_corpus.py")
index_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(index_corpus)


def test_documentation_lines_keep_prose_and_drop_code_and_rules():
    keep = index_corpus._keep
    assert keep("Return the number of rows the index holds.")
    assert not keep("x = np.zeros((3, 4))  # [3, 4]")  # under 60 % letters
    assert not keep("=" * 40) and not keep("Returns: int") and not keep("word " * 60)


def test_augmented_rows_are_unit_copies_at_the_documented_cosine_with_the_real_spectrum():
    g = np.random.default_rng(0)
    scales = np.linspace(3.0, 0.1, 48)  # an anisotropic "real" set: most variance in a few directions
    real = g.standard_normal((2000, 48)) * scales + 2.0
    real = (real / np.linalg.norm(real, axis=1, keepdims=True)).astype(np.float32)
    rows = index_corpus.augment(real, 6000, seed=1)
    assert rows.shape == (6000, 48) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:2000], real)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    source = real[np.arange(2000, 6000) % 2000]
    cosine = np.einsum("nd,nd->n", rows[2000:], source)
    assert abs(cosine.mean() - index_corpus.AUGMENT_COSINE) < 0.05
    # the copies' variance sits where the real rows' does (not spread evenly over all 48 dimensions)
    real_var, copy_var = real.var(axis=0), rows[2000:].var(axis=0)
    assert np.corrcoef(real_var, copy_var)[0, 1] > 0.9
