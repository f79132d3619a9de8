"""``omniembed serve IDX [--model M] [--host 127.0.0.1] [--port 8000]``: a search page and JSON API over an index."""

from __future__ import annotations

import argparse
import os

TOKEN_ENV = "OMNIEMBED_SERVE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory (see `omniembed index build`)")
    add_server_arguments(parser)
    parser.add_argument("--model", default=None, help="the index's model, if not where it was built from")
    parser.add_argument("--device", default=None, help="where the model runs (default: cpu)")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``omniembed demo --serve``."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; any other needs a token)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"token API calls must carry (default: ${TOKEN_ENV}; generated and printed when "
                             "listening beyond 127.0.0.1 without one)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload accepted (default 50 MB)")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                        help="server log level (info logs every request)")


def server_config(args: argparse.Namespace):
    from ..serve import ServeConfig

    return ServeConfig(host=args.host, port=args.port, token=args.token or None,
                       max_upload_bytes=int(args.max_upload_mb * 1024 * 1024))


def run(args: argparse.Namespace) -> int:
    from ..serve import serve

    serve(args.index, server_config(args), model=args.model, device=args.device, log_level=args.log_level)
    return 0
