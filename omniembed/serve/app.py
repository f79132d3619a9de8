"""The FastAPI application: the page, its static files, the JSON API and its OpenAPI docs (``/docs``).

Every error is JSON ``{"error": {"type", "input", "message"}}`` with a 4xx status naming the input (an unknown
id, an upload that cannot be read, a bad parameter); an unexpected failure is a 500 with the same shape and no
traceback. Files are served only by indexed id.
"""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time, some of them local.

import logging
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import (ConfigError, EmptyInputError, InputError, MissingModalityError, OmniEmbedError,
                      UnknownSuffixError)
from ..index.errors import RetrievalIndexError
from .config import ServeConfig
from .errors import ItemNotFoundError, ItemUnavailableError, UnauthorizedError, UploadTooLargeError
from .guard import COOKIE, BodyLimit, LocalHostsOnly, require_token, token_matches
from .service import SearchService, upload_name

log = logging.getLogger("omniembed.serve")

STATUS: dict[type[Exception], int] = {
    UnauthorizedError: 401,
    ItemNotFoundError: 404,
    ItemUnavailableError: 410,
    UploadTooLargeError: 413,
    UnknownSuffixError: 415,
    MissingModalityError: 415,
    InputError: 422,
    ConfigError: 400,
    RetrievalIndexError: 503,
}
"""Status of each error class; the first class in an error's MRO found here decides (others: 500)."""
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")
UPLOAD_CHUNK = 1 << 20
K_DEFAULT = 24

Modalities = Annotated[str | None, Query(description="only these modalities, comma-separated (e.g. image,audio)",
                                         examples=["image,video"])]
ItemId = Annotated[int, PathParam(description="an item's id, as in search results", ge=1)]


def create_app(service: SearchService) -> FastAPI:
    """The web application over one :class:`SearchService` (its config says how to guard it)."""
    config = service.config
    # Swagger UI at /docs from the fastapi-offline package's own copy: the docs work offline, no CDN
    app = FastAPIOffline(title="OmniEmbed search", version=__version__, docs_url="/docs", redoc_url=None,
                         description="Search one index of images, sounds, videos, point clouds and texts by a text, "
                                     "an uploaded file of any modality, or an indexed item.")
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + UPLOAD_CHUNK)  # room for the multipart framing
    if config.loopback:
        app.add_middleware(LocalHostsOnly, hosts=config.allowed_hosts)
    _add_error_handlers(app)
    app.include_router(_api(service), prefix="/api", dependencies=[Depends(require_token(config))])
    _add_page(app, config)
    return app


def _api(service: SearchService) -> APIRouter:
    api = APIRouter()
    max_k = service.config.max_k
    K = Annotated[int, Query(ge=1, le=max_k, description=f"how many results (1–{max_k})")]

    @api.get("/info", summary="the index: counts by modality, the model, what can be uploaded")
    def info() -> dict[str, Any]:
        return service.info()

    @api.get("/search", summary="search by a text")
    def search_text(q: Annotated[str, Query(description="the text query", min_length=1)], k: K = K_DEFAULT,
                    modality: Modalities = None) -> dict[str, Any]:
        return service.search_text(q, k, _modalities(modality))

    @api.post("/search/upload", summary="search by an uploaded file (image, sound, video, point cloud …)")
    def search_upload(file: Annotated[UploadFile, File(description="read by its suffix, like `embed()`")],
                      k: K = K_DEFAULT, modality: Modalities = None) -> dict[str, Any]:
        name = upload_name(file.filename)
        with tempfile.TemporaryDirectory(prefix="omniembed-upload-") as tmp:
            path = Path(tmp) / name
            _save_upload(file, path, name, service.config.max_upload_bytes)
            return service.search_file(path, name, k, _modalities(modality))

    @api.get("/search/item/{item_id}", summary="more like an indexed item (the item itself left out)")
    def search_item(item_id: ItemId, k: K = K_DEFAULT, modality: Modalities = None) -> dict[str, Any]:
        return service.search_item(item_id, k, _modalities(modality))

    @api.get("/items/{item_id}", summary="an item's metadata")
    def item(item_id: ItemId) -> dict[str, Any]:
        return service.describe(service.item(item_id))

    @api.get("/items/{item_id}/media", summary="the indexed file itself (byte ranges supported)",
             response_class=FileResponse)
    def media(item_id: ItemId) -> FileResponse:
        path, mime = service.media(item_id)
        return FileResponse(path, media_type=mime, headers={"Content-Security-Policy": "sandbox",
                                                            "X-Content-Type-Options": "nosniff",
                                                            "Cache-Control": "private, max-age=300"})

    @api.get("/items/{item_id}/thumbnail", summary="the modality's picture of the item (PNG)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def thumbnail(item_id: ItemId) -> Response:
        return Response(service.thumbnail(item_id), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=300"})

    @api.get("/items/{item_id}/points", summary="a point cloud's points for the 3-D viewer ([N, 3], unit sphere)")
    def points(item_id: ItemId) -> dict[str, Any]:
        return {"id": item_id, "points": service.points(item_id)}

    return api


def _save_upload(file: UploadFile, path: Path, name: str, limit: int) -> None:
    """Copy an upload to ``path``, refusing it once it passes ``limit`` bytes."""
    written = 0
    with open(path, "wb") as out:
        while chunk := file.file.read(UPLOAD_CHUNK):
            written += len(chunk)
            if written > limit:
                raise UploadTooLargeError(name, f"is over the upload limit of {limit} bytes")
            out.write(chunk)
    if written == 0:
        raise EmptyInputError(name, "the upload is empty")


def _modalities(text: str | None) -> list[str] | None:
    wanted = [m.strip() for m in (text or "").split(",") if m.strip()]
    return wanted or None


# ---- the page -----------------------------------------------------------------------------------
def _add_page(app: FastAPI, config: ServeConfig) -> None:
    static = resources.files("omniembed.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    page = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        if token is not None:  # trade the token in the address for a cookie, and drop it from the address bar
            if not token_matches(config, token):
                raise UnauthorizedError("token", "does not match this server's token")
            response = RedirectResponse("/", status_code=303)
            if config.token:
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer"})


# ---- errors --------------------------------------------------------------------------------------------------
def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OmniEmbedError)
    async def known(request: Request, exc: OmniEmbedError) -> JSONResponse:
        status = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), 500)
        where = getattr(exc, "source", None) or getattr(exc, "where", None) or getattr(exc, "modality", None)
        return _error(status, type(exc).__name__, where, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        first = exc.errors()[0]["loc"] if exc.errors() else ("request",)
        return _error(422, "InvalidParameterError", ".".join(str(p) for p in first[1:]) or str(first[0]),
                      "; ".join(problems))

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", request.url.path, f"{request.url.path}: {exc.detail}",
                      getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "InternalError", request.url.path,
                      f"{request.url.path}: internal error ({type(exc).__name__}); the server log has the details")


def _error(status: int, kind: str, where: Any, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"error": {"type": kind, "input": None if where is None else str(where),
                                   "message": message}}, status_code=status, headers=headers)
