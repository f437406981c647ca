"""Convolutional front-end with exact length bookkeeping.

SpeechBrain's :class:`~speechbrain.lobes.models.convolution.ConvolutionFrontEnd`
reflects the borders of an utterance when it is alone, but sees the batch
padding (non-zero after normalisation and after each block) when it is in a
batch. Zero border padding plus masking the padded frames before each block
makes an utterance's output independent of the batch it is in.
"""

import functools
import math

import torch
from speechbrain.lobes.models.convolution import ConvolutionFrontEnd

from speechbrain_ee.nnet.fast_conv import ChannelsLastConv2d
from speechbrain_ee.nnet.lengths import as_counts, in_convention, length_mask


class MaskedConvFrontEnd(torch.nn.Module):
    """Strided 2-D CNN over ``(batch, time, feats)`` that masks padding between blocks.

    The blocks are SpeechBrain ``ConvBlock``s (one conv, LayerNorm, activation,
    dropout), built through :class:`ConvolutionFrontEnd`, so checkpoints keep
    SpeechBrain's parameter layout.

    Arguments
    ---------
    input_size : int
        Feature dimension (e.g. 80 filterbanks).
    out_channels : sequence of int
        Channels of each block.
    kernel_size : int
        Kernel of every block.
    stride : int
        Time/frequency stride of every block.
    dropout : float
        Dropout after each block.

    Example
    -------
    >>> cnn = MaskedConvFrontEnd(80, out_channels=(8, 4))
    >>> out, lens = cnn(torch.rand(2, 101, 80), torch.tensor([101, 50]))
    >>> out.shape, lens.tolist(), cnn.output_size
    (torch.Size([2, 26, 80]), [26, 13], 80)
    """

    #: at inference, run each block with :func:`conv_block_inplace` (False:
    #: SpeechBrain's block modules, e.g. to time the difference)
    inplace_inference = True

    def __init__(self, input_size=80, out_channels=(64, 32), kernel_size=3, stride=2, dropout=0.1):
        super().__init__()
        self.stride = stride
        self.num_blocks = len(out_channels)
        self.cnn = ConvolutionFrontEnd(
            input_shape=(8, 100, input_size),
            num_blocks=len(out_channels),
            num_layers_per_block=1,
            out_channels=list(out_channels),
            kernel_sizes=[kernel_size] * len(out_channels),
            strides=[stride] * len(out_channels),
            residuals=[False] * len(out_channels),
            # zero padding (SpeechBrain's default is reflection): an utterance
            # then sees the same borders alone and in a batch
            # (ChannelsLastConv2d: SpeechBrain's Conv2d, computed without layout copies)
            conv_module=functools.partial(ChannelsLastConv2d, padding_mode="constant"),
            dropout=dropout,
        )
        freq = input_size
        for _ in out_channels:
            freq = math.ceil(freq / stride)
        self.output_size = freq * out_channels[-1]

    def output_lengths(self, lengths):
        """Frame counts after the front-end for input frame counts ``lengths``."""
        for _ in range(self.num_blocks):
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
        return lengths

    def forward(self, feats, lengths):
        """Returns ``(batch, time', output_size)`` features and their lengths,
        in the convention of ``lengths`` (SpeechBrain's relative lengths, or
        integer frame counts).

        At inference (eval mode, autograd off) each block runs
        :func:`conv_block_inplace`: the same outputs without the two
        full-size copies that LayerNorm and the activation allocate."""
        inplace = self.inplace_inference and not self.training and not torch.is_grad_enabled()
        lengths, relative = as_counts(lengths, feats.shape[1])
        x = feats
        for position, block in enumerate(self.cnn.children()):
            if bool((lengths < x.shape[1]).any()):  # else nothing to mask
                mask = length_mask(lengths, x.shape[1])
                mask = mask.view(mask.shape + (1,) * (x.dim() - 2))
                # the first block's input is the caller's tensor: never overwritten
                x = x.mul_(mask) if inplace and position > 0 else x * mask
            x = conv_block_inplace(block, x) if inplace and inplace_applies(block) else block(x)
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
        return x.flatten(start_dim=2), in_convention(lengths, x.shape[1], relative)


def inplace_applies(block):
    """Whether :func:`conv_block_inplace` computes SpeechBrain ``ConvBlock``
    ``block``: one convolution, an affine LayerNorm, LeakyReLU, dropout, no residual."""
    layers = list(block.convs.children())
    return (
        block.reduce_conv is None
        and len(layers) == 4
        and isinstance(getattr(layers[1], "norm", None), torch.nn.LayerNorm)
        and layers[1].norm.elementwise_affine and layers[1].norm.bias is not None
        and isinstance(layers[2], torch.nn.LeakyReLU)
        and isinstance(layers[3], torch.nn.Dropout)
    )


def conv_block_inplace(block, x):
    """Inference of a front-end ``ConvBlock`` (conv -> LayerNorm -> LeakyReLU
    -> dropout) that normalises and activates the convolution's output in
    place: same result as ``block(x)`` in eval mode (to float rounding), one
    full-size tensor allocated instead of three.

    On a 10 s utterance the first block's output is 5 MB, beyond what the
    allocator keeps for reuse, so every new tensor of that size is fresh
    memory that the kernel maps page by page: those page faults, not the
    arithmetic, were most of the front-end's time (about 3 of 4 ms per
    tensor on a 2-core Xeon, against 0.4-0.7 ms for the operation itself).
    The variance is the two-pass one (centre, then square), as exact as
    ``torch.nn.functional.layer_norm``.

    Example
    -------
    >>> cnn = MaskedConvFrontEnd(20, out_channels=(8, 4)).eval()
    >>> block = next(cnn.cnn.children())
    >>> x = torch.rand(2, 30, 20)
    >>> with torch.no_grad():
    ...     torch.allclose(conv_block_inplace(block, x), block(x), atol=1e-5)
    True
    """
    conv, layer_norm, activation, _ = block.convs.children()
    out = conv(x).contiguous()  # a no-op for ChannelsLastConv2d's output
    norm = layer_norm.norm
    rows = out.view(-1, norm.weight.numel())  # (frames, normalised features)
    rows.sub_(rows.mean(dim=-1, keepdim=True))
    variance = torch.linalg.vector_norm(rows, dim=-1, keepdim=True).square_().div_(rows.shape[-1])
    rows.mul_(variance.add_(norm.eps).rsqrt_())
    torch.addcmul(norm.bias.view(-1), rows, norm.weight.view(-1), out=rows)
    return torch.nn.functional.leaky_relu_(out, activation.negative_slope)
