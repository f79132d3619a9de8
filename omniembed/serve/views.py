"""How the page shows an item of each modality: a registry of :class:`TileView` by modality name.

The page draws a tile from its view's ``player`` (``image``: the thumbnail; ``audio``: a spectrogram thumbnail and
an audio player; ``video``: a player with the middle frame as poster; ``points``: a drag-to-rotate 3-D viewer fed
by ``/api/items/{id}/points``; ``text``: the text itself; ``file``: the thumbnail when the modality draws one, else
the file name). A modality registered later gets ``file`` unless it registers a view here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import ConfigError

PLAYERS = ("image", "audio", "video", "points", "text", "file")


@dataclass(frozen=True)
class TileView:
    """``player``: one of :data:`PLAYERS`. ``thumbnail``: whether to ask ``/api/items/{id}/thumbnail`` for a
    picture (the service also turns it off for a modality that draws none)."""

    player: str
    thumbnail: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_VIEWS: dict[str, TileView] = {}
DEFAULT_VIEW = TileView("file")


def register_view(modality: str, view: TileView) -> None:
    if view.player not in PLAYERS:
        raise ConfigError(f"view of {modality}: player {view.player!r} is not one of {', '.join(PLAYERS)}")
    _VIEWS[modality] = view


def view_of(modality: str) -> TileView:
    return _VIEWS.get(modality, DEFAULT_VIEW)


register_view("image", TileView("image"))
register_view("audio", TileView("audio"))
register_view("video", TileView("video"))
register_view("pointcloud", TileView("points"))
register_view("text", TileView("text", thumbnail=False))
