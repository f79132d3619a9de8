"""Property-based fuzzing of every loader: for every registered file suffix, random bytes, truncations and bit flips
of a small valid file give either a finite vector or an ``OmniEmbedError`` naming the file — never another
exception, a hang (each case runs under a deadline) or a non-finite vector.

The default run is derandomised (the same cases every time) and small; ``OMNIEMBED_FUZZ_EXAMPLES=500`` runs that
many random cases per suffix. The number of cases run is printed at the end of the module.
"""

from __future__ import annotations

import collections
import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from deadline import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_seeds import SEEDS, write_seed

from omniembed.errors import OmniEmbedError
from omniembed.registry import get_modality, list_modalities

SUFFIXES = sorted({s for m in list_modalities() for s in get_modality(m).suffixes})
EXAMPLES = int(os.environ.get("OMNIEMBED_FUZZ_EXAMPLES", "5"))
CASE_SECONDS = 30
HEADER_BYTES = 64
"""Bit flips are drawn from the whole file and, separately, from its first bytes, where the parsers' sizes live."""

_cases: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("seeds")
    return {suffix: write_seed(suffix, root / f"seed{suffix}").read_bytes() for suffix in SUFFIXES}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory, request) -> Path:
    yield tmp_path_factory.mktemp("fuzz")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if _cases:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nloader fuzz: {sum(_cases.values())} cases over {len(_cases)} suffixes "
                  f"({EXAMPLES} drawn per suffix)")


def _flip(seed: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    return bytes(data)


def damaged(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation, bit flips anywhere, or bit flips in the header region of ``seed``."""
    n = len(seed)
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=12)
    header_flips = st.lists(st.tuples(st.integers(0, min(n, HEADER_BYTES) - 1), st.integers(0, 7)),
                            min_size=1, max_size=4)
    return st.one_of(st.binary(max_size=min(2 * n, 4096)),
                     st.integers(0, n - 1).map(lambda k: seed[:k]),
                     flips.map(lambda f: _flip(seed, f)),
                     header_flips.map(lambda f: _flip(seed, f)))


def test_every_registered_suffix_has_a_seed_file():
    assert set(SUFFIXES) <= set(SEEDS), f"no seed writer in tests/loader_seeds.py for {set(SUFFIXES) - set(SEEDS)}"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_damaged_file_gives_a_finite_vector_or_an_error_naming_it(suffix, seeds, case_dir, tiny_model):
    path = case_dir / f"case{suffix}"

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="OMNIEMBED_FUZZ_EXAMPLES" not in
              os.environ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=damaged(seeds[suffix]))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        _cases[suffix] += 1
        with deadline(CASE_SECONDS, f"embedding a damaged {suffix} file of {len(data)} bytes"):
            try:
                vector = tiny_model.embed(path)
            except OmniEmbedError as exc:
                assert str(path) in str(exc), f"the error does not name the file: {exc}"
                return
        assert vector.shape == (1, tiny_model.embed_dim)
        assert np.isfinite(vector).all()

    check()
    assert _cases[suffix] >= min(EXAMPLES, 1)
