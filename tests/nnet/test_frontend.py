"""The conv front-end: its in-place inference path computes what SpeechBrain's blocks do."""

import pytest
import torch

from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd, conv_block_inplace, inplace_applies


@pytest.mark.parametrize("channels", [(8, 4), (16, 16, 8)])
def test_inference_path_equals_speechbrain_blocks(channels):
    torch.manual_seed(0)
    frontend = MaskedConvFrontEnd(40, out_channels=channels).eval()
    with torch.no_grad():  # non-trivial affine parameters
        for block in frontend.cnn.children():
            norm = list(block.convs.children())[1].norm
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    feats = 3 * torch.randn(3, 57, 40) + 2  # a large mean: the variance must stay exact
    lengths = torch.tensor([57, 40, 9])
    kept = feats.clone()
    with torch.no_grad():
        assert all(inplace_applies(block) for block in frontend.cnn.children())
        out, out_lengths = frontend(feats, lengths)
        frontend.inplace_inference = False  # SpeechBrain's block modules
        expected, expected_lengths = frontend(feats, lengths)
    assert torch.equal(feats, kept), "the caller's features are never overwritten"
    assert torch.equal(out_lengths, expected_lengths)
    assert torch.allclose(out, expected, atol=1e-5)


def test_training_and_autograd_use_the_modules():
    frontend = MaskedConvFrontEnd(20, out_channels=(4, 4))
    feats, lengths = torch.rand(2, 30, 20, requires_grad=True), torch.tensor([30, 21])
    out, _ = frontend.eval()(feats, lengths)  # autograd on: no in-place path
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    with torch.no_grad():
        train_out, _ = frontend.train()(feats, lengths)  # dropout active: the modules run
    assert train_out.shape == out.shape


def test_inplace_does_not_apply_to_other_blocks():
    frontend = MaskedConvFrontEnd(20, out_channels=(4,)).eval()
    block = next(frontend.cnn.children())
    block.convs.act_0 = torch.nn.GELU()
    assert not inplace_applies(block)
    feats = torch.rand(1, 12, 20)
    with torch.no_grad():  # the forward falls back to the block itself
        out, _ = frontend(feats, torch.tensor([12]))
        assert torch.allclose(out, block(feats).flatten(2), atol=1e-6)


def test_inplace_inference_can_be_switched_off(monkeypatch):
    frontend = MaskedConvFrontEnd(20, out_channels=(4, 4)).eval()
    calls = []
    monkeypatch.setattr("speechbrain_ee.nnet.frontend.conv_block_inplace",
                        lambda block, x: calls.append(block) or block(x))
    feats, lengths = torch.rand(1, 12, 20), torch.tensor([12])
    with torch.no_grad():
        frontend(feats, lengths)
        assert len(calls) == 2
        frontend.inplace_inference = False
        frontend(feats, lengths)
    assert len(calls) == 2


def full_size_allocations(fn, nbytes):
    """Operations that allocate at least ``nbytes`` while ``fn`` runs."""
    with torch.profiler.profile(profile_memory=True) as prof:
        fn()
    return [event.name for event in prof.events() if event.self_cpu_memory_usage >= nbytes]


def test_long_input_allocates_one_full_size_tensor_per_block():
    """A 10 s utterance: SpeechBrain's block allocates its 5 MB output three
    times (conv, LayerNorm, LeakyReLU), fresh memory the kernel maps page
    by page; the in-place path once."""
    frontend = MaskedConvFrontEnd(80, out_channels=(64, 32)).eval()
    feats = torch.randn(1, 1001, 80)
    block = next(frontend.cnn.children())
    with torch.inference_mode():
        nbytes = conv_block_inplace(block, feats).numel() * 4
        assert len(full_size_allocations(lambda: block(feats), nbytes)) == 3
        assert len(full_size_allocations(lambda: conv_block_inplace(block, feats), nbytes)) == 1
