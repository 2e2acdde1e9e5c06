"""PCConvNet and ContrastiveCNN: shapes, minimum input, sizes, padded batches."""

from __future__ import annotations

import pytest
import torch

from raympa.models import ContrastiveCNN, PCConvNet, build_model


@pytest.mark.parametrize("cls", [PCConvNet, ContrastiveCNN])
def test_shapes_and_latent(cls):
    torch.manual_seed(0)
    m = cls().eval()
    x = torch.rand(5, 1000)  # (batch, n_frames)
    assert m(x).shape == (5,)
    z = m.latent(x)
    assert z.shape == (5, 16)
    pred, z2 = m.forward_latent(x)
    torch.testing.assert_close(pred, m(x))
    torch.testing.assert_close(z2, z)


def test_latent_is_time_mean_after_third_block():
    torch.manual_seed(0)
    m = PCConvNet().eval()
    x = torch.rand(3, 1200)
    h = m.encoder.blocks(x[:, None, :])  # (3, 16, frames')
    torch.testing.assert_close(m.latent(x), h.mean(dim=2))
    assert h.shape[2] == 1 + ((1 + ((1 + (1200 - 7) // 3) - 7) // 3) - 7) // 3


def test_minimum_input_lengths():
    pc, cc = PCConvNet().eval(), ContrastiveCNN().eval()
    assert pc(torch.rand(2, 997)).shape == (2,)  # 997 -> 331 -> 109 -> 35 -> 1
    with pytest.raises(ValueError, match="at least 997"):
        pc(torch.rand(2, 996))
    assert cc(torch.rand(2, 79)).shape == (2,)
    with pytest.raises(ValueError, match="at least 79"):
        cc(torch.rand(2, 78))


def test_sizes_match_the_paper():
    assert PCConvNet().n_parameters() == 1795  # about 1.8k (Pati et al. 2018's PCConvNet)
    # encoder 1,232 (with BatchNorm) + head 16*8+8 + 8*1+1 = 1,377
    assert ContrastiveCNN().n_parameters() == 1232 + 136 + 9
    assert ContrastiveCNN()(torch.rand(4, 1000)).min() > 0  # sigmoid output in (0, 1)


@pytest.mark.parametrize("cls", [PCConvNet, ContrastiveCNN])
def test_padded_batch_equals_contours_alone(cls):
    """Masked time means make a zero-padded batch exact (eval mode)."""
    torch.manual_seed(1)
    m = cls().eval()
    lengths = [1000, 1733, 2501]
    xs = [torch.rand(n) for n in lengths]
    batch = torch.zeros(3, max(lengths))
    for i, x in enumerate(xs):
        batch[i, : len(x)] = x
    pred, z = m.forward_latent(batch, torch.tensor(lengths))
    for i, x in enumerate(xs):
        p1, z1 = m.forward_latent(x[None])
        torch.testing.assert_close(pred[i : i + 1], p1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(z[i : i + 1], z1, rtol=1e-5, atol=1e-6)


def test_build_model():
    assert isinstance(build_model("pcconvnet"), PCConvNet)
    assert isinstance(build_model("contrastive-jl"), ContrastiveCNN)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lstm")
