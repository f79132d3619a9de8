"""ULIP / ULIP-2 → OmniEmbed: the reference's outputs and intermediates reproduced, sizes from shapes, towers,
clear refusals of foreign files, and the CLI's directory with its provenance."""

import argparse
import json

import numpy as np
import open3d as o3d
import pytest
import torch
from safetensors.torch import load_file, save_file

from omniembed.commands import convert as convert_command
from omniembed.convert import from_ulip, load_ulip
from omniembed.errors import CheckpointError, ConfigError
from omniembed.model import OmniEmbedModel
from omniembed.modalities.point_groups import fps_knn, group_points

from conftest import shared_path

TINY = {"num_heads": 4, "num_group": 16, "group_size": 8, "npoints": 256}
"""The fixture's constructor values that tensor shapes do not show."""
VARIANTS = {"ulip1": "", "ulip2": "ulip2."}
"""variant → prefix of its tensors in io.safetensors."""


@pytest.fixture(scope="module")
def fixture_dir():
    return shared_path("fixtures", "ulip-pointbert-tiny")


@pytest.fixture(scope="module")
def states(fixture_dir):
    """variant → ULIP state dict as a DDP checkpoint holds it (``module.`` on every key)."""
    ulip1 = load_file(str(fixture_dir / "model.safetensors"))
    ulip2 = {**ulip1, **load_file(str(fixture_dir / "ulip2_colored_delta.safetensors"))}
    return {name: {f"module.{k}": v for k, v in s.items()} for name, s in (("ulip1", ulip1), ("ulip2", ulip2))}


@pytest.fixture(scope="module")
def io(fixture_dir):
    return load_file(str(fixture_dir / "io.safetensors"))


@pytest.fixture(scope="module")
def models(states):
    return {name: from_ulip(state, TINY) for name, state in states.items()}


def out(io, variant, name):
    return io[f"{VARIANTS[variant]}output.{name}"]


def points(io, variant):
    return io[f"{VARIANTS[variant]}input.points"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_converted_encoder_reproduces_encode_pc_and_pc_feat(models, io, variant):
    encoder = models[variant].encoder("pointcloud")
    with torch.inference_mode():
        tokens = encoder.trunk(encoder.stem(points(io, variant))).tokens
        head = encoder.head.head
        pc_feat = head.read(tokens)
        pc_embed = encoder.features(points(io, variant))[:, 0]
        unit = encoder(points(io, variant))
    torch.testing.assert_close(pc_feat, out(io, variant, "pc_feat"), atol=1e-5, rtol=0)
    torch.testing.assert_close(pc_embed, out(io, variant, "pc_embed"), atol=1e-5, rtol=0)
    expected = torch.nn.functional.normalize(out(io, variant, "pc_embed"), dim=-1)
    torch.testing.assert_close(unit, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pruned", [True, False])
def test_both_batched_paths_pick_the_reference_centres_and_groups(io, variant, pruned):
    xyz = points(io, variant)[..., :3]
    centres, members = fps_knn(xyz, 16, 8, pruned=pruned, rule="pointnet2")
    assert centres.tolist() == out(io, variant, "fps_idx").long().tolist()
    assert torch.equal(members.sort(dim=-1).values, out(io, variant, "knn_idx").sort(dim=-1).values)


@pytest.mark.parametrize("variant", VARIANTS)
def test_group_centres_neighbourhoods_and_tokens_match_the_reference(models, io, variant):
    clouds = points(io, variant)
    groups, centres = group_points(clouds, 16, 8, rule="pointnet2")
    assert torch.equal(centres, out(io, variant, "centers"))  # centres are exact copies of input points
    # the reference stores members sorted by (distance, index), ours come nearest first: compare by index
    _, members = fps_knn(clouds[..., :3], 16, 8, rule="pointnet2")
    ours = groups.gather(2, members.argsort(dim=-1)[..., None].expand_as(groups))
    reference = out(io, variant, "neighborhood")
    theirs = reference.gather(2, out(io, variant, "knn_idx").argsort(dim=-1)[..., None].expand_as(reference))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    if variant == "ulip2":  # colours ride along uncentred
        rgb = clouds[..., 3:]
        rows = torch.arange(2)[:, None, None]
        torch.testing.assert_close(ours[..., 3:], rgb[rows, members.sort(dim=-1).values], atol=0, rtol=0)
    with torch.inference_mode():
        tokens = models[variant].encoder("pointcloud").stem.encoder(groups)
    torch.testing.assert_close(tokens, out(io, variant, "group_tokens"), atol=1e-5, rtol=0)


def kernel_fps(xyz: np.ndarray, m: int) -> list[int]:
    """Pointnet2_PyTorch's furthest_point_sampling_kernel, one thread at a time: start at 0, skip near-origin
    points, strict > within a thread, left slot on ties in the tree reduction (float32 throughout)."""
    p = xyz.astype(np.float32)
    n = len(p)
    s = min(1 << (n.bit_length() - 1), 512)
    temp = np.full(n, 1e10, dtype=np.float32)
    picks = [0]
    for _ in range(m - 1):
        x1 = p[picks[-1]]
        best, besti = np.full(s, -1, dtype=np.float32), np.zeros(s, dtype=np.int64)
        for t in range(s):
            for k in range(t, n, s):
                if float((p[k, 0] * p[k, 0] + p[k, 1] * p[k, 1]) + p[k, 2] * p[k, 2]) <= 1e-3:
                    continue
                diff = p[k] - x1
                d = np.float32((diff[0] * diff[0] + diff[1] * diff[1]) + diff[2] * diff[2])
                temp[k] = min(d, temp[k])
                if temp[k] > best[t]:
                    best[t], besti[t] = temp[k], k
        width = s // 2
        while width:
            take = best[width:2 * width] > best[:width]
            besti[:width] = np.where(take, besti[width:2 * width], besti[:width])
            best[:width] = np.maximum(best[:width], best[width:2 * width])
            width //= 2
        picks.append(int(besti[0]))
    return picks


@pytest.mark.parametrize("pruned", [True, False])
@pytest.mark.parametrize("n", [48, 100])
def test_ties_and_near_origin_points_follow_the_cuda_kernel(pruned, n):
    rng = np.random.default_rng(n)
    grid = rng.integers(-2, 3, size=(2, n, 3)) / 2.0  # exact ties everywhere, points at the origin
    picks = fps_knn(torch.from_numpy(grid).float(), 24, 0, pruned=pruned, rule="pointnet2")[0]
    assert picks.tolist() == [kernel_fps(grid[b], 24) for b in range(2)]


def test_the_reference_tie_probe_is_reproduced(io):
    probe = io["fps_probe.points"]
    for pruned in (True, False):
        picks = fps_knn(probe, 4, 0, pruned=pruned, rule="pointnet2")[0]
        assert picks.tolist() == io["fps_probe.idx"].long().tolist() == [[0, 2, 1, 6]]
        assert torch.equal(probe[0, picks[0]], io["fps_probe.centers"][0])


def test_sizes_come_from_tensor_shapes_and_module_prefixes_are_stripped(models):
    for variant, (channels, width, extra, n_points) in {"ulip1": (3, 512, "none", 8192),
                                                         "ulip2": (6, 1280, "rgb", 10000)}.items():
        config = models[variant].config.modalities["pointcloud"]
        assert models[variant].embed_dim == width
        assert (config.extra, config.trunk.width, config.trunk.depth, config.encoder_dims) == (extra, 32, 2, 32)
        assert (config.fps_rule, config.pos_every_block, config.preprocessing) == ("pointnet2", True, "ulip")
        assert models[variant].encoder("pointcloud").stem.encoder.first[0].in_channels == channels


def test_point_counts_default_to_the_released_recipes(states):
    n_points = {name: from_ulip(state, {"num_heads": 4}).config.modalities["pointcloud"].n_points
                for name, state in states.items()}
    assert n_points == {"ulip1": 8192, "ulip2": 10000}


def test_foreign_files_are_refused_naming_missing_and_unexpected_keys(states):
    imagebind_like = {"modality_trunks.vision.blocks.0.attn.in_proj_weight": torch.zeros(3, 1)}
    with pytest.raises(CheckpointError, match=r"missing point_encoder\.cls_token.*modality_trunks\.vision"):
        from_ulip(imagebind_like, TINY, source="imagebind.pth")
    broken = dict(states["ulip1"])
    del broken["module.point_encoder.blocks.blocks.1.mlp.fc2.bias"]
    broken["module.point_encoder.cls_head_finetune.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match=r"missing \(1\): point_encoder\.blocks\.blocks\.1\.mlp\.fc2\.bias.*"
                                              r"unexpected \(1\): point_encoder\.cls_head_finetune"):
        from_ulip(broken, TINY)
    reshaped = dict(states["ulip1"])
    reshaped["module.point_encoder.cls_pos"] = torch.zeros(1, 2, 32)
    with pytest.raises(CheckpointError, match=r"cls_pos \(1, 2, 32\) \(expected \(1, 1, 32\)\)"):
        from_ulip(reshaped, TINY)
    with pytest.raises(ConfigError, match="num_head"):
        from_ulip(states["ulip1"], {"num_head": 4})


def test_checkpoint_files_are_read_without_unpickling_code(states, tmp_path):
    path = tmp_path / "ulip.pt"
    # what ULIP's main.py saves: an argparse.Namespace of options beside the state dict
    torch.save({"state_dict": states["ulip1"], "epoch": 3, "args": argparse.Namespace(model="ULIP_PointBERT")}, path)
    assert load_ulip(path, TINY).fingerprint() == from_ulip(states["ulip1"], TINY).fingerprint()

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled",))

    torch.save({"state_dict": states["ulip1"], "hook": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="without unpickling"):
        load_ulip(tmp_path / "evil.pt", TINY)


def test_cli_writes_a_model_that_reloads_with_its_source_and_licence(states, io, tmp_path, capsys):
    checkpoint, args_file = tmp_path / "ulip2.safetensors", tmp_path / "arch.json"
    save_file({k: v.contiguous() for k, v in states["ulip2"].items()}, str(checkpoint))
    args_file.write_text(json.dumps(TINY))
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    target = tmp_path / "ulip2-omni"
    assert convert_command.run(parser.parse_args(["ulip", str(checkpoint), str(target), "--config",
                                                  str(args_file)])) == 0
    assert "ULIP-2 colored" in capsys.readouterr().out
    model = OmniEmbedModel.load(target)
    with torch.inference_mode():
        pc_embed = model.encoder("pointcloud").features(io["ulip2.input.points"])[:, 0]
    torch.testing.assert_close(pc_embed, io["ulip2.output.pc_embed"], atol=1e-5, rtol=0)
    source = json.loads((target / "source.json").read_text())
    assert source["format"] == "ULIP-2 colored" and source["converted_from"] == checkpoint.name
    assert "BSD-3-Clause" in source["code_licence"] and "not stated" in source["weights_licence"]
    assert len(source["sha256"]) == 64


def test_embedding_a_file_gives_what_ulips_loader_and_encoder_give(models, io, tmp_path):
    """Cloud 0 is already ULIP-normalised: written to a .ply and embedded, it meets pc_normalize again (a no-op
    up to rounding) and keeps its point order, so the unit embedding is the reference's."""
    model = models["ulip1"]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(io["input.points"][0].double().numpy()))
    path = tmp_path / "chair.ply"
    o3d.io.write_point_cloud(str(path), cloud)
    row = model.embed([str(path)])[0]
    expected = torch.nn.functional.normalize(io["output.pc_embed"][0], dim=0).numpy()
    np.testing.assert_allclose(row, expected, atol=1e-5)


def test_cli_refuses_options_of_the_other_format(states, tmp_path):
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    with pytest.raises(ConfigError, match="--modalities does not apply to ulip"):
        convert_command.run(parser.parse_args(["ulip", "x.pt", str(tmp_path / "o"), "--modalities", "vision"]))


@pytest.mark.parametrize("recipe", ["ULIP_PointBERT (ULIP-1, xyz)", "ULIP2_PointBERT_Colored (ULIP-2, xyz+rgb)"])
def test_full_size_layouts_of_the_released_recipes_are_the_ones_expected(fixture_dir, recipe):
    """The fixture records the full-size state-dict shapes ULIP's yaml files give: the converter expects exactly
    those keys and shapes, and infers the recipe's sizes back from them."""
    from omniembed.convert.ulip import expected_shapes, infer_shapes

    full = json.loads((fixture_dir / "config.json").read_text())["full_size"][recipe]
    depth = full["model"]["depth"]
    recorded = {}
    for key, shape in full["state_dict_shapes"].items():
        for i in (range(depth) if "{i}" in key else [None]):
            recorded[key.format(i=i) if i is not None else key] = tuple(shape)
    assert len(recorded) == full["n_tensors"]
    state = {k: torch.empty(v) for k, v in recorded.items()}
    shapes = infer_shapes(state, recipe)
    assert (shapes.width, shapes.depth, shapes.encoder_dims) == (384, depth, 256)
    assert expected_shapes(shapes) == recorded
