"""``omniembed index build|add|prune|tune|info|export``: a searchable index of folders of files (see
omniembed.index)."""

from __future__ import annotations

import argparse
import json
import sys

KIND_CHOICES = ("auto", "flat", "hnsw", "ivfpq")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="create (or resume) an index and add files",
                           description="Embed every file under PATH... (modality from the suffix) into a new index; "
                                       "re-running a killed build resumes it.")
    build.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (walked recursively)")
    build.add_argument("--model", required=True,
                       help="checkpoint directory, pretrained model (omniembed models) or registered config")
    build.add_argument("--out", required=True, help="index directory to create")
    build.add_argument("--from-embeddings", nargs="+", default=[], metavar="PART",
                       help="merge part files written by `omniembed embed` (the .npy paths, e.g. emb.part*.npy)")
    build.add_argument("--index-type", choices=KIND_CHOICES, default="auto",
                       help="vector index: by size (auto: flat while small, hnsw, ivfpq for very large) or forced")
    build.add_argument("--index-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an IndexSpec field, e.g. hnsw_m=48 or target_recall=0.99 (repeatable)")
    _add_embedding_options(build)

    add = sub.add_parser("add", help="embed new and changed files into an index",
                         description="Embed files that are new or changed since they were indexed (content hash); "
                                     "unchanged files are skipped, deleted ones stay until `index prune`.")
    add.add_argument("index", help="index directory")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked recursively)")
    add.add_argument("--model", default=None, help="the index's model, if not where it was built from")
    add.add_argument("--rehash", action="store_true", help="hash every file, even those whose size and mtime match")
    _add_embedding_options(add)

    prune = sub.add_parser("prune", help="remove the rows of files that no longer exist")
    prune.add_argument("index", help="index directory")

    tune = sub.add_parser("tune", help="tune the search breadth on sample queries",
                          description="Set the search breadth from sample queries of the kind the index will serve "
                                      "(files of any modality, texts, or embeddings; at least 20) instead of rows "
                                      "held out of it; an index its build left exact on held-out rows gets its "
                                      "graph back to be judged on them. The queries are kept and tune the index "
                                      "again after every rebuild.")
    tune.add_argument("index", help="index directory")
    tune.add_argument("paths", nargs="*", metavar="PATH", help="query files or folders (walked recursively)")
    tune.add_argument("--texts", metavar="FILE", help="a text file of queries, one per line")
    tune.add_argument("--vectors", metavar="NPY", help="query embeddings [Q, D] saved with numpy")
    tune.add_argument("--target-recall", type=float, default=None,
                      help="recall@10 to reach (default: the index spec's target_recall)")
    tune.add_argument("--model", default=None, help="the index's model, if not where it was built from")
    tune.add_argument("--device", default=None, help="where the model runs (default: cpu)")

    info = sub.add_parser("info", help="describe an index")
    info.add_argument("index", help="index directory")
    info.add_argument("--json", action="store_true", help="print JSON")

    export = sub.add_parser("export", help="write the vectors and metadata to a Parquet file",
                            description="Export id, path, modality, size, mtime_ns, hash, label and vector (float32 "
                                        "list) of every indexed file, for an external vector database.")
    export.add_argument("index", help="index directory")
    export.add_argument("out", help="the .parquet file to write")


def _add_embedding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=32, help="files per embedding batch and per commit")
    parser.add_argument("--device", default=None, help="where the model runs (default: cpu)")
    parser.add_argument("--label", default=None, help="a label stored with every added file")
    parser.add_argument("--label-from-folder", action="store_true", help="label each file with its folder's name")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "add": _add, "prune": _prune, "tune": _tune, "info": _info,
            "export": _export}[args.action](args)


def _build(args: argparse.Namespace) -> int:
    from ..index import Index
    from .common import require_paths

    require_paths(args.paths + args.from_embeddings)  # before the index directory exists
    index = Index.create(args.out, args.model, spec=_spec(args), device=args.device)
    if args.from_embeddings:
        _report(index.add_embeddings(args.from_embeddings, label=_label(args)))
    if args.paths or not args.from_embeddings:
        _report(index.add(args.paths, label=_label(args), batch_size=args.batch_size))
    return 0


def _add(args: argparse.Namespace) -> int:
    from ..index import Index
    from .common import require_paths

    require_paths(args.paths)
    index = Index.open(args.index, model=args.model, device=args.device)
    _report(index.add(args.paths, label=_label(args), batch_size=args.batch_size, rehash=args.rehash))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from ..index import Index

    _report(Index.open(args.index).prune())
    return 0


def _tune(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..index import Index
    from ..walk import discover
    from .common import require_paths

    require_paths(args.paths + [p for p in (args.texts, args.vectors) if p])
    index = Index.open(args.index, model=args.model, device=args.device)
    queries = []
    if args.paths:
        queries += [f.path for f in discover(args.paths, index.model.modality_of).files]
    if args.texts:
        with open(args.texts, encoding="utf-8") as f:
            queries += [line.strip() for line in f if line.strip()]
    rows, skipped = index.embed_queries(queries) if queries else (np.zeros((0, index.embed_dim), np.float32), [])
    if args.vectors:
        rows = np.concatenate([rows, index.embed_queries(_load_rows(args.vectors))[0]])
    if not len(rows):
        raise ConfigError("omniembed index tune: no queries (give PATHs, --texts or --vectors)")
    report = index.tune(rows, args.target_recall)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(report.summary())
    return 0


def _load_rows(path: str):
    import numpy as np

    from ..errors import InputError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a numpy array file ({exc})") from exc


def _info(args: argparse.Namespace) -> int:
    from ..index import Index

    info = Index.open(args.index).info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['directory']}: {info['count']} files, generation {info['generation']}")
    print(f"  model      {info['model_name']} ({info['model'] or 'in-memory'}), fingerprint {info['fingerprint']}, "
          f"embed_dim {info['embed_dim']}")
    print(f"  vectors    {info['description']}")
    if info["tune_queries"]:
        print(f"  tuned on   {info['tune_queries']} sample queries to recall@10 {info['tune_target']}")
    for modality, n in info["by_modality"].items():
        pending = info["pending"].get(modality, 0)
        print(f"  {modality:<10} {n - pending:8d} files" + (f" (+{pending} not yet published)" if pending else ""))
    print(f"  on disk    {sum(info['files'].values()) / 2**20:.1f} MiB")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..index import Index

    n = Index.open(args.index).export(args.out)
    print(f"exported {n} rows to {args.out}")
    return 0


def _spec(args: argparse.Namespace):
    from ..config import replace_path
    from ..errors import ConfigError
    from ..index import IndexSpec

    spec = IndexSpec(kind=args.index_type)
    for option in args.index_option:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"--index-option expects KEY=VALUE, got {option!r}")
        spec = replace_path(spec, key.strip(), _parse_value(value.strip()))
    return spec.validate()


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _label(args: argparse.Namespace):
    if args.label_from_folder:
        return lambda path: path.parent.name
    return args.label


def _report(report) -> None:
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    print(report.summary())
