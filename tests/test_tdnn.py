"""The time-delay network trunk: shapes, statistics pooling, position independence, config checks."""

from __future__ import annotations

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.nn.tdnn import TdnnConfig, TdnnTrunk
from omniembed.nn.tokens import Tokens


def trunk(**overrides) -> TdnnTrunk:
    torch.manual_seed(0)
    return TdnnTrunk(TdnnConfig(**{"width": 16, **overrides}), n_mels=8).eval()


def test_output_is_mean_and_max_over_time_of_the_last_layer():
    net = trunk()
    x = torch.randn(3, 1, 8, 50)
    frames = net.layers(x[:, 0])  # [3, 16, T]
    assert frames.shape == (3, 16, 50)  # "same" padding at every dilation: the frame count is kept
    out = net(Tokens(x)).tokens
    assert out.shape == (3, 1, 32) and net.width == 32
    torch.testing.assert_close(out[:, 0], torch.cat([frames.mean(-1), frames.amax(-1)], dim=-1))


@pytest.mark.parametrize("kernels, dilations", [([3], [1]), ([5, 3, 3], [1, 2, 3]), ([7, 1], [2, 1])])
def test_any_odd_kernels_and_dilations_keep_the_frame_count(kernels, dilations):
    net = trunk(kernels=kernels, dilations=dilations)
    assert net.layers(torch.randn(2, 8, 37)).shape == (2, 16, 37)


def test_a_word_embeds_the_same_wherever_it_sits_in_the_clip():
    """Padding frames are 0 (per-clip normalisation): a word moved inside the clip, away from its edges, gives
    the same pooled features."""
    net = trunk()
    word = torch.randn(1, 1, 8, 20)
    early, late = torch.zeros(1, 1, 8, 100), torch.zeros(1, 1, 8, 100)
    early[..., 15:35], late[..., 60:80] = word, word
    with torch.no_grad():
        torch.testing.assert_close(net(Tokens(early)).tokens, net(Tokens(late)).tokens, atol=1e-5, rtol=0)


@pytest.mark.parametrize("overrides, message", [
    ({"kernels": [5, 3], "dilations": [1]}, "same length"),
    ({"kernels": [], "dilations": []}, "non-empty"),
    ({"kernels": [4], "dilations": [1]}, "odd"),
    ({"kernels": [3], "dilations": [0]}, "dilations"),
    ({"width": 0}, "width"),
])
def test_bad_layouts_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TdnnTrunk(TdnnConfig(**overrides), n_mels=8)
