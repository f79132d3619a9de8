"""What a pip user gets: a core that imports without any extra, errors that name the missing extra, nothing global
changed on import, a CLI that answers --help without torch, and a wheel/sdist that carry the whole package."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from omniembed.extras import EXTRAS

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"omniembed": REPO / "omniembed", "omniembed/modalities": REPO / "modalities",
                "omniembed/pretrain": REPO / "pretrain"}
"""Installed path → source folder (pyproject's package-dir)."""


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env=env if env is not None else os.environ.copy(), cwd=REPO)


# ---- nothing global on import, --help without torch -------------------------------------------------------------
GLOBAL_STATE = """
import json, logging, os, sys, warnings
def state():
    root = logging.getLogger()
    return {"env": dict(os.environ), "warnings": [repr(f) for f in warnings.filters],
            "logging": [root.level, [repr(h) for h in root.handlers], logging.root.manager.disable]}
"""


def test_import_omniembed_sets_no_environment_logging_or_warnings_and_imports_no_torch():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = GLOBAL_STATE + """
before = state()
import omniembed
after = state()
print(json.dumps({"same": before == after, "env_added": sorted(set(after["env"]) - set(before["env"])),
                  "torch": "torch" in sys.modules, "version": omniembed.__version__}))
"""
    done = run_python(code, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"same": True, "env_added": [], "torch": False, "version": result["version"]}


@pytest.mark.slow
def test_importing_every_omniembed_module_changes_no_global_state():
    """torch and the other third-party packages first (they may set their own filters), then every module of ours."""
    code = GLOBAL_STATE + """
import pkgutil
import faiss, matplotlib, numpy, open3d, torch, torchvision, torchaudio, transformers, webdataset, yaml  # noqa
import omniembed
before = state()
names = []
for package in ("omniembed", "omniembed.modalities", "omniembed.pretrain"):  # the last two live outside omniembed/
    module = __import__(package, fromlist=["x"])
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        __import__(info.name)
        names.append(info.name)
after = state()
print(json.dumps({"modules": len(names), "same": before == after,
                  "diff": {k: [before[k], after[k]] for k in before if before[k] != after[k] and k != "env"},
                  "env": sorted(set(after["env"].items()) ^ set(before["env"].items()))}))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["modules"] > 80
    assert result["same"], (result["diff"], result["env"])


def test_cli_help_and_version_answer_without_importing_torch():
    code = """
import contextlib, io, json, sys
from omniembed.cli import COMMANDS, build_parser, main
build_parser()  # every subcommand's options
out = {}
for argv in (["--help"], ["--version"], ["embed", "--help"], ["data", "omnidigits", "--help"]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(argv)
        except SystemExit as exc:
            out[" ".join(argv)] = [exc.code, buffer.getvalue()]
out["torch"] = "torch" in sys.modules
out["commands"] = len(COMMANDS)
print(json.dumps(out))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["torch"] is False
    code, text = result["--help"]
    assert code == 0 and all(name in text for name in ("embed", "index", "search", "train", "demo"))
    from importlib.metadata import version

    assert result["--version"] == [0, f"omniembed {version('omniembed')}\n"]
    assert result["embed --help"][0] == 0 and "--batch-size" in result["embed --help"][1]
    assert result["data omnidigits --help"][0] == 0 and "OMNIEMBED_SHARED_DATA" in result["data omnidigits --help"][1]


def test_the_product_holds_no_development_machine_path():
    offenders = [f"{path.relative_to(REPO)}:{n}" for folder in PACKAGE_DIRS.values() for path in folder.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"['\"]/work/", line)]
    assert offenders == []


def test_an_installed_package_that_fails_to_import_is_reported_with_its_extra_and_cause(tmp_path, monkeypatch):
    """open3d without the system's libusb raises OSError from ctypes: the user still learns which extra it is."""
    import pickle

    from omniembed.errors import MissingExtraError
    from omniembed.extras import require

    (tmp_path / "brokenpkg.py").write_text("raise OSError('libusb-1.0.so.0: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(EXTRAS, "brokenpkg", "pointcloud")
    with pytest.raises(MissingExtraError) as caught:
        require("brokenpkg", "point clouds")
    assert str(caught.value) == ("point clouds needs the optional package 'brokenpkg', which cannot be imported "
                                 "(libusb-1.0.so.0: cannot open shared object file): "
                                 "pip install 'omniembed[pointcloud]'")
    copy = pickle.loads(pickle.dumps(caught.value))  # raised in dataset-rendering worker processes
    assert (str(copy), copy.extra, copy.module) == (str(caught.value), "pointcloud", "brokenpkg")


def test_a_lazy_module_imports_on_first_read_and_keeps_each_attribute_it_read(tmp_path, monkeypatch):
    from omniembed.extras import LazyModule

    (tmp_path / "lazypkg.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazypkg", raising=False)
    lazy = LazyModule("lazypkg", "a test feature")
    assert "lazypkg" not in sys.modules
    assert lazy.ANSWER == 42 and "lazypkg" in sys.modules
    assert vars(lazy)["ANSWER"] == 42  # kept: the next read is a plain attribute read, no import look-up
    with pytest.raises(AttributeError):
        lazy.QUESTION


# ---- every extra missing at once ----------------------------------------------------------------------------------
BLOCKED_PROBE = """
import json, sys
from pathlib import Path

BLOCKED = sys.argv[2].split(",")
for name in BLOCKED:
    sys.modules[name] = None  # `import name` (and name.sub) now raises ModuleNotFoundError

import av, numpy as np, soundfile as sf
from PIL import Image

tmp = Path(sys.argv[1])
Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp / "grey.png")
sf.write(tmp / "tone.wav", 0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440), 16000)
np.save(tmp / "cloud.npy", np.random.default_rng(0).random((600, 3)))
with av.open(str(tmp / "clip.mp4"), "w") as container:
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(20):
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), "rgb24")))
    container.mux(stream.encode())

import omniembed
from omniembed.errors import MissingExtraError

model = omniembed.create("omni-tiny", seed=0)
results = {}

def attempt(case, call):
    try:
        value = call()
        results[case] = ["ok", value]
    except MissingExtraError as exc:
        results[case] = ["missing", exc.extra, str(exc)]
    except Exception as exc:
        results[case] = ["error", f"{type(exc).__name__}: {exc}"]

def embed(*items):
    return list(model.embed(list(items)).shape)

def save_and_load():
    model.save(tmp / "ckpt")
    return omniembed.load(tmp / "ckpt").fingerprint() == model.fingerprint()

def cli(*argv):
    from omniembed.cli import main
    return main(list(argv))

attempt("core", lambda: embed("a grey square", str(tmp / "grey.png"), str(tmp / "tone.wav")))
attempt("video", lambda: embed(str(tmp / "clip.mp4")))
attempt("checkpoint", save_and_load)
attempt("pointcloud", lambda: embed(str(tmp / "cloud.npy")))
attempt("pointcloud_skip", lambda: model.embed([str(tmp / "cloud.npy")], on_error="skip")[1])
attempt("decord", lambda: __import__("omniembed.modalities.video_io", fromlist=["x"]).open_video(tmp / "clip.mp4",
                                                                                                    "decord"))
attempt("index", lambda: omniembed.Index.create(tmp / "idx", model))
attempt("train", lambda: __import__("omniembed.pretrain.trainer"))
attempt("plots", lambda: __import__("omniembed.eval.plots", fromlist=["x"]).plot_confusions(
    {"image": np.eye(2)}, ["a", "b"], tmp / "c.png"))
attempt("hf", lambda: __import__("omniembed.modalities.hf_text", fromlist=["x"]).SentenceEncoderTower
        .from_directory(tmp))
attempt("demo_data", lambda: __import__("omniembed.datasets", fromlist=["x"]).build_omnidigits(
    tmp / "digits", n_train=10, n_test=10, source="offline", modalities=["image", "text"], workers=1))
attempt("cli_index", lambda: cli("index", "build", "--model", "omni-tiny", "--out", str(tmp / "idx2"), str(tmp)))
results["blocked_imported"] = sorted(name for name in BLOCKED if sys.modules.get(name) is not None)
print(json.dumps(results))
"""


@pytest.mark.slow
def test_without_any_extra_the_core_works_and_each_feature_names_its_extra(tmp_path):
    blocked = sorted(EXTRAS)
    done = run_python(BLOCKED_PROBE, str(tmp_path), ",".join(blocked))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("blocked_imported") == []
    assert result.pop("core") == ["ok", [3, 64]]
    assert result.pop("video") == ["ok", [1, 64]]  # PyAV alone
    assert result.pop("checkpoint") == ["ok", True]
    assert result.pop("cli_index") == ["ok", 2]  # the CLI's exit code for an OmniEmbedError
    assert "omniembed index: error: the retrieval index" in done.stderr
    assert "pip install 'omniembed[index]'" in done.stderr
    expected = {"pointcloud": "pointcloud", "pointcloud_skip": "pointcloud", "decord": "video", "index": "index",
                "train": "train", "plots": "plots", "hf": "hf", "demo_data": "demo"}
    assert {case: outcome[:2] for case, outcome in result.items()} == {
        case: ["missing", extra] for case, extra in expected.items()}
    for case, (_, extra, message) in result.items():
        assert message.endswith(f"pip install 'omniembed[{extra}]'") and "cannot be imported" in message, message


# ---- the wheel and the sdist ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The wheel and sdist built (offline, without build isolation) from a copy of the source tree; the build log."""
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".cache", "omnidigits-demo", "runs", "demo_out"))
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"wheel": next((tmp / "out").glob("*.whl")), "sdist": next((tmp / "out").glob("*.tar.gz")),
            "log": done.stdout + done.stderr}


def source_files() -> set[str]:
    """Every file of the package as the wheel should hold it (installed paths)."""
    return {f"{installed}/{path.relative_to(folder).as_posix()}" for installed, folder in PACKAGE_DIRS.items()
            for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts}


def test_wheel_holds_every_source_file_and_recipe_the_license_and_nothing_else(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    package = {n for n in names if ".dist-info/" not in n}
    assert package == source_files()
    assert {n for n in package if n.startswith("omniembed/pretrain/recipes/")} >= {
        "omniembed/pretrain/recipes/omnidigits.yaml", "omniembed/pretrain/recipes/image_text_tiny.yaml"}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "omniembed = omniembed.cli:main" in entry_points
    assert "License-Expression: Apache-2.0" in metadata


def test_wheel_core_needs_no_extra_and_pins_no_torch_and_every_extra_is_declared(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M)
    core = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower(): r for r in requires if "extra ==" not in r}
    assert not set(core) & {"open3d", "faiss-cpu", "decord", "pyarrow", "webdataset", "braceexpand", "pyyaml",
                            "tensorboard", "transformers", "matplotlib", "scikit-learn", "scipy",
                            "librosa"}
    for name in ("torch", "torchvision", "torchaudio"):
        assert ">=" in core[name] and "==" not in core[name]
    provided = set(re.findall(r"^Provides-Extra: (.+)$", metadata, flags=re.M))
    assert set(EXTRAS.values()) <= provided and {"all", "test", "demo"} <= provided


def test_sdist_holds_the_license_readme_recipes_and_test_suite_and_builds_without_warnings(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "pretrain/recipes/omnidigits.yaml", "tests/conftest.py",
            "tests/test_packaging.py", "modalities/video_pyav.py"} <= names
    assert not {n for n in names if n.startswith(("tools/", "examples/", ".venv/"))}
    # setuptools warned of the TOML-table license and of the recipes folder installed as data, not as a package
    assert "deprecat" not in dists["log"].lower() and "'omniembed.pretrain.recipes'" not in dists["log"]
