"""The Point-BERT stem: one token per group plus CLS, gradients through the gathered points, order-free groups."""

import torch

from omniembed.modalities.point_stem import MiniPointNet, PointGroupStem


def test_stem_makes_one_token_per_group_plus_cls_and_passes_gradients():
    stem = PointGroupStem(in_channels=3, n_groups=8, group_size=4, width=32, encoder_dims=24, hidden=8,
                          pos_hidden=16)
    clouds = torch.rand(3, 64, 3, requires_grad=True)
    tokens = stem(clouds).tokens
    assert tokens.shape == (3, 9, 32)
    tokens.sum().backward()
    assert stem.encoder.first[0].weight.grad.abs().sum() > 0
    assert clouds.grad.abs().sum() > 0  # through the gathered coordinates, not the indices


def test_mini_pointnet_ignores_the_order_of_points_in_a_group():
    net = MiniPointNet(in_channels=3, hidden=8, out_dim=16).eval()
    groups = torch.rand(2, 5, 7, 3)
    shuffled = groups[:, :, torch.randperm(7)]
    torch.testing.assert_close(net(groups), net(shuffled))
