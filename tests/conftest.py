"""Shared fixtures: offline environment, the tiny model, small real media files made on the fly."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent (a user's fresh clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session", autouse=True)
def _subprocess_temp_dir(tmp_path_factory: pytest.TempPathFactory):
    """The processes tests start (spawned ranks, servers, CLI runs) keep their temp files under pytest's own temp
    dir, which pytest prunes: wandb, imported by timm when installed, makes temp dirs at import that a process
    ending without finalisers (spawned workers, a killed server) never removes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("subprocess-tmp")))
        yield


@pytest.fixture(scope="session")
def tiny_model():
    import omniembed

    return omniembed.create("omni-tiny", seed=0)


@pytest.fixture
def image_files(tmp_path: Path) -> dict[str, Path]:
    """A jpeg, a png, a bmp (PIL path), a truncated jpeg and a non-image with a .jpg suffix."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    files = {"jpg": tmp_path / "photo.jpg", "png": tmp_path / "draw.png", "bmp": tmp_path / "scan.bmp"}
    Image.fromarray(pixels).save(files["jpg"], quality=90)
    Image.fromarray(pixels[::-1]).save(files["png"])
    Image.fromarray(pixels[:, ::-1]).save(files["bmp"])
    data = files["jpg"].read_bytes()
    files["truncated"] = tmp_path / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["garbage"] = tmp_path / "garbage.jpg"
    files["garbage"].write_bytes(b"this is not a jpeg")
    return files


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
