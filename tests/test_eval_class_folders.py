"""``omniembed eval`` on a ModelNet40-style folder: classes from folder names, templates from a file, zero-shot
point-cloud scores equal to scoring the same clouds and prompts by hand."""

from __future__ import annotations

import json

import numpy as np
import open3d as o3d
import pytest

from omniembed.cli import main
from omniembed.errors import ConfigError, InputError, UnreadableInputError
from omniembed.eval.class_folders import eval_set_from_class_folders, read_class_names, read_templates
from omniembed.modalities.pointcloud import read_point_cloud

TEMPLATES = ["a point cloud model of {}.", "There is a {} in the scene."]


@pytest.fixture
def modelnet(tmp_path):
    """Three classes in ModelNet40's layout (class/split/file), one format each: .npy, .off meshes, .ply."""
    root = tmp_path / "modelnet"
    rng = np.random.default_rng(0)
    for i in range(2):
        (root / "chair" / "test").mkdir(parents=True, exist_ok=True)
        np.save(root / "chair" / "test" / f"chair_{i:04d}.npy", rng.standard_normal((300, 3)) * [1, 2, 1])
        (root / "flower_pot" / "test").mkdir(parents=True, exist_ok=True)
        mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=0.5 + 0.2 * i, height=1.0)
        o3d.io.write_triangle_mesh(str(root / "flower_pot" / "test" / f"flower_pot_{i:04d}.off"), mesh)
        (root / "lamp" / "test").mkdir(parents=True, exist_ok=True)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(rng.random((400, 3)) * [0.2, 3, 0.2]))
        o3d.io.write_point_cloud(str(root / "lamp" / "test" / f"lamp_{i:04d}.ply"), cloud)
    (root / "lamp" / "train").mkdir()
    np.save(root / "lamp" / "train" / "lamp_9999.npy", rng.random((300, 3)))  # another split: left out
    return root


def test_class_folders_give_labels_by_folder_and_names_with_spaces(tiny_model, modelnet):
    data = eval_set_from_class_folders(modelnet, tiny_model, split="test")
    assert data.class_names == ["chair", "flower pot", "lamp"]
    assert [p.rsplit("/", 1)[-1] for p in data.items["pointcloud"]] == [
        "chair_0000.npy", "chair_0001.npy", "flower_pot_0000.off", "flower_pot_0001.off", "lamp_0000.ply",
        "lamp_0001.ply"]
    np.testing.assert_array_equal(data.labels["pointcloud"], [0, 0, 1, 1, 2, 2])


def test_eval_scores_point_clouds_against_prompts_from_a_templates_file(tiny_model, modelnet, tmp_path, capsys):
    model_dir = tmp_path / "model"
    tiny_model.save(model_dir)
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({"modelnet40_64": TEMPLATES, "other": ["{}"]}))
    assert main(["eval", str(modelnet), "--model", str(model_dir), "--split", "test", "--templates",
                 str(templates), "--templates-key", "modelnet40_64", "--modality", "pointcloud", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["zero_shot"]) == {"pointcloud"} and report["failures"] == []

    # the same score by hand: unit cloud embeddings against the renormalised mean of each class's prompts
    files = sorted(str(p) for p in modelnet.glob("*/test/*"))
    clouds = tiny_model.embed(files, modality="pointcloud")
    prompts = tiny_model.embed([t.format(c) for c in ("chair", "flower pot", "lamp") for t in TEMPLATES],
                               modality="text").reshape(3, 2, -1).mean(axis=1)
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    top1 = float(((clouds @ prompts.T).argmax(axis=1) == [0, 0, 1, 1, 2, 2]).mean())
    assert report["zero_shot"]["pointcloud"]["top1"] == pytest.approx(top1)
    assert report["zero_shot"]["pointcloud"]["top5"] == 1.0  # three classes: always in the top 5


def test_templates_and_class_names_files_are_checked(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("a {}.\n\nthe {} in the scene.\n")
    assert read_templates(text) == ["a {}.", "the {} in the scene."]
    text.write_text("a photo\n")
    with pytest.raises(ConfigError, match=r"needs a '\{\}'.*a photo"):
        read_templates(text)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"modelnet40": ["airplane", "bathtub"]}))
    assert read_class_names(labels, "modelnet40") == ["airplane", "bathtub"]
    with pytest.raises(ConfigError, match=r"modelnet40.*'shapenet' is not one"):
        read_class_names(labels, "shapenet")


def test_a_folder_without_readable_files_or_with_too_few_names_is_refused(tiny_model, modelnet, tmp_path):
    with pytest.raises(ConfigError, match="3 class folders but 2 class names"):
        eval_set_from_class_folders(modelnet, tiny_model, split="test", class_names=["a", "b"])
    (tmp_path / "empty" / "chair").mkdir(parents=True)
    (tmp_path / "empty" / "chair" / "notes.xyzw").write_text("?")
    with pytest.raises(InputError, match="no file under its class folders"):
        eval_set_from_class_folders(tmp_path / "empty", tiny_model)


def test_modelnet40_off_files_with_counts_joined_to_the_keyword_are_read(tmp_path, tiny_model):
    """A quarter of ModelNet40's .off files start 'OFF<V> <F> <E>', which open3d refuses; they read as the
    same mesh written with a proper header, quads fanned into triangles."""
    body = "0 0 0\n2 0 0\n2 1 0\n0 1 0\n1 0.5 1\n"
    faces = "3 0 1 4\n3 1 2 4\n3 2 3 4\n3 3 0 4\n"
    joined, proper = tmp_path / "joined.off", tmp_path / "proper.off"
    joined.write_text("OFF5 5 0\n" + body + "4 0 1 2 3\n" + faces)
    proper.write_text("OFF\n5 6 0\n" + body + "3 0 1 2\n3 0 2 3\n" + faces)
    mesh, reference = read_point_cloud(joined), o3d.io.read_triangle_mesh(str(proper))
    np.testing.assert_array_equal(np.asarray(mesh.vertices), np.asarray(reference.vertices))
    np.testing.assert_array_equal(np.asarray(mesh.triangles), np.asarray(reference.triangles))
    rows = tiny_model.embed([str(joined), str(proper)], modality="pointcloud")
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-6)
    truncated = tmp_path / "truncated.off"
    truncated.write_text("OFF5 5 0\n" + body + "4 0 1 2 3\n3 0 1\n")
    with pytest.raises(UnreadableInputError, match="truncated.off: malformed or truncated OFF"):
        read_point_cloud(truncated)
