"""The fast convolutions compute what the modules they replace compute."""

import copy

import pytest
import torch
from speechbrain.lobes.models.transformer.Conformer import ConvolutionModule
from speechbrain.nnet.CNN import Conv2d

from speechbrain_ee.nnet.encoder import MaskedConvolutionModule
from speechbrain_ee.nnet.fast_conv import ChannelsLastConv2d, depthwise_conv1d
from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd


@pytest.mark.parametrize("kernel, padding, dilation, stride", [(31, 15, 1, 1), (5, 4, 1, 1), (3, 2, 2, 1), (7, 3, 1, 2)])
def test_equals_conv1d_with_gradients(kernel, padding, dilation, stride):
    conv = torch.nn.Conv1d(6, 6, kernel, stride=stride, padding=padding, dilation=dilation, groups=6)
    x = torch.randn(2, 6, 40, requires_grad=True)
    out = depthwise_conv1d(conv, x)
    expected = conv(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    grads = [torch.autograd.grad(y.square().sum(), (x, conv.weight)) for y in (out, expected)]
    for got, ref in zip(*grads):
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_other_convolutions_fall_back():
    for conv in (torch.nn.Conv1d(6, 12, 3, groups=6), torch.nn.Conv1d(6, 6, 3, padding="same", groups=6),
                 torch.nn.Conv1d(6, 6, 3, padding=1, groups=6, padding_mode="reflect")):
        x = torch.randn(2, 6, 20)
        assert torch.equal(depthwise_conv1d(conv, x), conv(x))


@pytest.mark.parametrize("shape, kernel, stride", [((2, 33, 20), 3, 2), ((2, 33, 20, 4), 3, 2),
                                                   ((2, 33, 20, 4), 5, 1), ((1, 16, 9, 3), 3, (2, 1))])
def test_channels_last_conv2d_equals_speechbrain_conv2d(shape, kernel, stride):
    options = dict(kernel_size=kernel, stride=stride, padding_mode="constant", input_shape=shape)
    fast = ChannelsLastConv2d(6, **options)
    slow = Conv2d(6, **options)
    slow.load_state_dict(fast.state_dict())
    assert list(fast.state_dict()) == list(slow.state_dict())
    x = torch.randn(shape, requires_grad=True)
    out, expected = fast(x), slow(x)
    assert out.shape == expected.shape and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    grads = [torch.autograd.grad(y.square().sum(), (x, m.conv.weight)) for y, m in ((out, fast), (expected, slow))]
    for got, ref in zip(*grads):
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_channels_last_conv2d_falls_back_for_reflection_padding():
    fast = ChannelsLastConv2d(4, 3, input_shape=(1, 10, 8, 2))  # SpeechBrain's default: reflect
    slow = Conv2d(4, 3, input_shape=(1, 10, 8, 2))
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(1, 10, 8, 2)
    assert torch.equal(fast(x), slow(x))


def test_frontend_output_and_checkpoint_unchanged():
    frontend = MaskedConvFrontEnd(20, (8, 4)).eval()
    reference = copy.deepcopy(frontend)
    for block in reference.cnn.children():
        conv = block.convs.conv_0
        assert isinstance(conv, ChannelsLastConv2d)
        conv.__class__ = Conv2d  # SpeechBrain's forward on the same weights
    feats, lengths = torch.randn(3, 45, 20), torch.tensor([45, 30, 7])
    with torch.no_grad():
        out, out_lens = frontend(feats, lengths)
        expected, expected_lens = reference(feats, lengths)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert torch.equal(out_lens, expected_lens)
    assert list(frontend.state_dict()) == list(reference.state_dict())


def speechbrain_layout_conv_module(module, x, mask):
    """MaskedConvolutionModule computed with SpeechBrain's own layout and submodules."""
    out = module.bottleneck(module.layer_norm(x).transpose(1, 2))
    out = out.masked_fill(mask.transpose(1, 2), 0.0)
    out = module.conv(out)
    if module.causal:
        out = out[..., : -module.padding]
    return module.after_conv(out.transpose(1, 2)).masked_fill(mask, 0.0)


@pytest.mark.parametrize("causal", [False, True])
def test_conformer_conv_module_equals_speechbrain_layout(causal):
    module = MaskedConvolutionModule(16, 7, causal=causal).eval()
    x = torch.randn(3, 20, 16)
    mask = (torch.arange(20)[None, :] >= torch.tensor([20, 12, 3])[:, None]).unsqueeze(-1)
    with torch.no_grad():
        torch.testing.assert_close(module(x, mask), speechbrain_layout_conv_module(module, x, mask),
                                   atol=1e-5, rtol=0)
        reference = ConvolutionModule(16, 7, causal=causal).eval()
        reference.load_state_dict(module.state_dict())
        torch.testing.assert_close(module(x), reference(x), atol=1e-5, rtol=0)
