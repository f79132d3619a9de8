"""The Point-BERT stem: one token per group plus CLS, gradients through the gathered points, order-free groups."""

import torch
import torch.nn.functional as F

from omniembed.modalities.point_stem import GroupContextConv, MiniPointNet, PointGroupStem, PointwiseConv


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


def test_pointwise_conv_is_the_kernel_one_convolution_it_stores_applied_channels_last():
    conv = PointwiseConv(5, 7)
    assert conv.weight.shape == (7, 5, 1)  # Point-BERT's Conv1d layout: its checkpoints load unchanged
    points = torch.rand(3, 11, 5)
    expected = F.conv1d(points.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    torch.testing.assert_close(conv(points), expected)


def test_group_context_conv_equals_the_convolution_over_pooled_and_point_features_joined():
    conv = GroupContextConv(8, 6)
    points, pooled = torch.rand(3, 5, 4), torch.rand(3, 1, 4)
    joined = torch.cat([pooled.expand(-1, 5, -1), points], dim=2)  # [3, 5, 8], Point-BERT's concatenation
    expected = F.conv1d(joined.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    torch.testing.assert_close(conv(points, pooled), expected)


def test_mini_pointnet_gives_the_same_features_with_and_without_autograd():
    net = MiniPointNet(in_channels=3, hidden=4, out_dim=6).eval()
    groups = torch.rand(2, 3, 5, 3, requires_grad=True)
    with torch.no_grad():
        expected = net(groups)
    torch.testing.assert_close(net(groups), expected)


def test_mini_pointnet_normalises_over_every_point_of_every_group_as_point_bert_does():
    net = MiniPointNet(in_channels=3, hidden=4, out_dim=6).train()
    groups = torch.rand(2, 3, 5, 3) * 4 + 1
    net(groups)
    first = net.first[0](groups.reshape(-1, 3))  # [B·G·K, h] before the batch norm
    torch.testing.assert_close(net.first[1].running_mean, 0.1 * first.mean(0).detach())
