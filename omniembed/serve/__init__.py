"""``omniembed serve INDEX``: a search page and JSON API over an index — type a text, drop a picture, a sound, a
video or a point cloud, filter by modality, play what comes back, ask for "more like this".

>>> from omniembed.serve import ServeConfig, serve
>>> serve("omnidigits-demo/index", ServeConfig(port=8000))        # blocks; Ctrl-C stops it

API (OpenAPI docs at ``/docs``): ``GET /api/info``; ``GET /api/search?q=TEXT&k=24&modality=image,audio``;
``POST /api/search/upload`` (multipart ``file``); ``GET /api/search/item/{id}``; ``GET /api/items/{id}``,
``/media``, ``/thumbnail``, ``/points``.

**Safe by default.** It listens on 127.0.0.1 and accepts only local ``Host`` headers there; bound anywhere else it
needs a token (given, or generated and printed) on every API call. Files are served only by their indexed id,
never by a path from a request. Uploads have a size limit, are read by the same loaders as ``embed()`` and a bad
one gets a JSON 4xx naming the problem. Needs the ``serve`` extra (``pip install 'omniembed[serve]'``).
"""

from __future__ import annotations

import os

from ..extras import require
from .config import ServeConfig, is_loopback
from .errors import ItemNotFoundError, ItemUnavailableError, ServeError, UnauthorizedError, UploadTooLargeError

__all__ = ["ServeConfig", "serve", "build_app", "BackgroundServer", "is_loopback", "ServeError", "ItemNotFoundError",
           "ItemUnavailableError", "UnauthorizedError", "UploadTooLargeError"]


def __getattr__(name: str):
    # uvicorn is imported only by what runs a server
    if name == "BackgroundServer":
        from .runner import BackgroundServer

        return BackgroundServer
    raise AttributeError(f"module 'omniembed.serve' has no attribute {name!r}")


def build_app(index: "str | os.PathLike", config: ServeConfig | None = None, model: "object | None" = None,
              device: str | None = None):
    """The FastAPI app over the index at ``index`` (``model``: a model, checkpoint directory or name overriding the
    index's own). ``config`` is used as given (see :meth:`ServeConfig.secured`)."""
    require_serve_extra()
    from ..index import Index
    from .app import create_app
    from .service import SearchService

    config = (config or ServeConfig()).validate()
    return create_app(SearchService(Index.open(index, model=model, device=device), config))


def require_serve_extra() -> None:
    """Raise :class:`~omniembed.errors.MissingExtraError` naming the ``serve`` extra when one of its packages is
    missing — before the server's modules import them."""
    for name in ("fastapi", "uvicorn", "python_multipart", "fastapi_offline"):
        require(name, "omniembed serve")


def serve(index: "str | os.PathLike", config: ServeConfig | None = None, model: "object | None" = None,
          device: str | None = None, log_level: str = "warning") -> None:
    """Serve the index until interrupted; prints the address (with the token when one is needed)."""
    require_serve_extra()
    from .runner import listen, run_forever, url_of

    config = (config or ServeConfig()).secured()
    app = build_app(index, config, model, device)
    sock = listen(config.host, config.port)
    query = f"/?token={config.token}" if config.token else "/"
    print(f"omniembed serve: {index} on {url_of(sock)}{query}  (API docs: /docs; Ctrl-C stops)", flush=True)
    run_forever(app, sock, log_level)
