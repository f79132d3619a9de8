"""Cross-modal retrieval index: folders of images, audio, video, point clouds … embedded by one model, searchable
by a text, a file of any modality, or a vector.

>>> from omniembed import Index
>>> index = Index.build("checkpoints/my-model", "photos.idx", ["photos/", "recordings/"])
>>> for hit in index.search("a dog barking", k=5, modalities=["audio", "video"]):
...     print(hit.rank, f"{hit.score:.3f}", hit.modality, hit.path)
>>> Index.open("photos.idx").add(["photos/"])   # later: only new and changed files are embedded

Command line: ``omniembed index build --model M --out IDX PATH...``, ``omniembed index add IDX PATH...``,
``omniembed index prune IDX``, ``omniembed index tune IDX QUERY...`` (the search breadth from sample queries),
``omniembed index info IDX``, ``omniembed index export IDX out.parquet``,
``omniembed search IDX --text "…" | --query FILE [--k 10] [--modality image,audio] [--json] [--grid out.png]``.

**Layout.** An index is a directory: ``index.sqlite`` holds one row per file (absolute path, modality, size,
mtime, sha256 of the content, optional label, and the vector) plus the settings (the model's directory or name,
its fingerprint and dimension, the :class:`IndexSpec`); ``vectors.<generation>.faiss`` holds the search structure
over the published rows (:mod:`.vectors`: exact ``IndexFlatIP`` while small, beyond it an HNSW graph over fp16
rows stored in walk order (:mod:`.layout`; over PCA-reduced vectors with exact re-ranking where few dimensions
hold the variance), IVF-PQ for very large sets; chosen by size, overridable, search breadth tuned to a target
recall after each build, on held-out rows or on sample queries given to ``Index.tune``).

**Incremental.** ``add`` walks the paths (modality from the suffix, via the model's registry), skips files whose
size and mtime — or, failing that, content hash — match their row, embeds new and changed ones in batches
(``model.embed(on_error="skip")``: a corrupt or unreadable file is reported and skipped), and appends them to the
faiss index (rebuilt instead when the kind changes, the row count doubles since the last build, or an HNSW graph
would lose rows). Deleted files stay until ``prune``.

**Reliability.** Every batch of rows is one SQLite transaction (WAL mode); a faiss file is written to a temp file
and renamed; the published generation number and the faiss file it names change in one transaction. A build
killed at any point and re-run finds the committed batches (same path, same hash), embeds only the rest, and
publishes once: nothing lost, nothing twice. Searches read one WAL snapshot and the faiss file it names, so a
search during an add sees the previous generation, complete. One writer at a time (an ``flock``). The index
stores the model fingerprint and refuses a different model (:class:`ModelMismatchError`).

**Scale.** ``omniembed embed --out emb.npy PATH...`` under ``torchrun --nproc_per_node N`` makes rank r embed every
N-th file and write ``emb.part{r}-of-{N}.npy`` (+ ``.jsonl`` rows, + ``.json`` manifest with the fingerprint);
``omniembed index build --model M --out IDX --from-embeddings emb.part*.npy`` merges the parts (:mod:`.parts`).

**Export to an external vector database.** ``omniembed index export IDX out.parquet`` (or
``Index.export(path)``) writes the published rows as Parquet: ``id, path, modality, size, mtime_ns, hash, label``
and ``vector`` (a fixed-size list of ``embed_dim`` float32, unit length; cosine = inner product), with the model
fingerprint in the schema metadata (key ``omniembed``). Most vector databases ingest this directly — e.g. LanceDB
``lancedb.connect(uri).create_table("files", pyarrow.parquet.read_table("out.parquet"))``, Milvus / Qdrant /
pgvector bulk loaders from the ``vector`` column, DuckDB ``read_parquet`` for ad-hoc SQL. Queries must be
embedded with the same model (check the fingerprint).
"""

from .errors import IndexBusyError, IndexCorruptError, IndexNotFoundError, ModelMismatchError, RetrievalIndexError
from .index import Index, SearchHit, Skipped, TuneReport, UpdateReport
from .vectors import IndexSpec, VectorIndex, choose_kind

__all__ = ["Index", "IndexSpec", "SearchHit", "Skipped", "TuneReport", "UpdateReport", "VectorIndex",
           "choose_kind", "RetrievalIndexError", "ModelMismatchError", "IndexNotFoundError", "IndexCorruptError",
           "IndexBusyError"]
