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


def _reference_blocks(blocks):
    """The same modules run by torch's own layers (``nn.Sequential``: grouped conv, BatchNorm, ReLU)."""
    import copy

    return torch.nn.Sequential(*copy.deepcopy(list(blocks)))


@pytest.mark.parametrize("members,c_in,c_out,kernel,stride,frames", [
    (1, 1, 4, 7, 3, 1000),  # encoder block 1
    (3, 4, 8, 7, 3, 332),  # encoder block 2
    (5, 16, 1, 35, 1, 35),  # PCConvNet's last block on a training chunk (one output frame)
    (2, 16, 1, 35, 1, 200),  # ... on a longer input: torch's modules in training, shifted tap sums in eval
    (3, 2, 3, 5, 2, 41),
])
def test_group_blocks_equal_torch_layers_forward_and_backward(members, c_in, c_out, kernel, stride, frames):
    """GroupBlocks (batched matmul over unfolded windows, member-major layout) = torch's grouped
    Conv1d -> BatchNorm1d -> ReLU: outputs, every gradient, running statistics, in both modes."""
    from raympa.models import GroupBatchNorm1d, GroupBlocks, GroupConv1d

    torch.manual_seed(0)
    blocks = GroupBlocks(GroupConv1d(c_in, c_out, kernel, stride, members=members),
                         GroupBatchNorm1d(c_out, members=members), torch.nn.ReLU()).double()
    with torch.no_grad():
        blocks[1].weight.uniform_(0.5, 1.5)
        blocks[1].bias.uniform_(-0.2, 0.2)
    ref = _reference_blocks(blocks)
    x = torch.randn(6, members * c_in, frames, dtype=torch.float64, requires_grad=True)
    for step in range(2):  # twice: the running statistics move on from their first update
        y, y_ref = blocks(x), ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
        g = torch.randn_like(y_ref)
        got = torch.autograd.grad(y, [x, *blocks.parameters()], g)
        want = torch.autograd.grad(y_ref, [x, *ref.parameters()], g)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    for name, buf in ref.state_dict().items():
        torch.testing.assert_close(blocks.state_dict()[name].double(), buf.double(), rtol=1e-12, atol=1e-14)
    blocks.eval(), ref.eval()
    torch.testing.assert_close(blocks(x), ref(x), rtol=1e-10, atol=1e-12)
    shared = x[:, :c_in].detach()[:, None].expand(-1, members, -1, -1).flatten(1, 2)  # one input for every member
    torch.testing.assert_close(blocks(shared), ref(shared.contiguous()), rtol=1e-10, atol=1e-12)


def test_stacked_model_state_dict_is_unchanged_by_group_blocks():
    """GroupBlocks keeps nn.Sequential's state dict, so checkpoints load as before."""
    m = PCConvNet()
    assert [n for n in m.state_dict() if n.startswith(("encoder.blocks.0.", "final.0."))] == [
        "encoder.blocks.0.weight", "encoder.blocks.0.bias", "final.0.weight", "final.0.bias"]
    assert m.n_parameters() == 1795
