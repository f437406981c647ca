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


def length_mask(lengths, max_len):
    """Boolean mask, True on real frames: shape ``(batch, max_len)``.

    Example
    -------
    >>> length_mask(torch.tensor([1, 3]), 3)
    tensor([[ True, False, False],
            [ True,  True,  True]])
    """
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def fbank_lengths(wav_lens, num_samples, hop_length):
    """Number of real feature frames of each utterance (centred STFT).

    Arguments
    ---------
    wav_lens : torch.Tensor
        Relative lengths (SpeechBrain convention), shape ``(batch,)``.
    num_samples : int
        Padded length of the waveform batch.
    hop_length : int
        Hop size in samples.

    Returns
    -------
    torch.Tensor
        Integer frame counts.

    Example
    -------
    >>> fbank_lengths(torch.tensor([0.5, 1.0]), 32000, 160)
    tensor([101, 201])
    """
    samples = torch.round(wav_lens * num_samples).long()
    return samples // hop_length + 1


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
        """Returns ``(batch, time', output_size)`` features and their frame counts."""
        x = feats
        for block in self.cnn.children():
            if bool((lengths < x.shape[1]).any()):  # else nothing to mask
                mask = length_mask(lengths, x.shape[1])
                x = x * mask.view(mask.shape + (1,) * (x.dim() - 2))
            x = block(x)
            lengths = torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")
        return x.flatten(start_dim=2), lengths
