"""Faster CPU layouts for the convolutions of our Conformer, same weights.

Both helpers run the very same modules (parameters, state_dict keys,
checkpoints unchanged) with a memory layout that oneDNN handles well; the
outputs agree to float rounding.

* :func:`depthwise_conv1d`: PyTorch's depthwise ``Conv1d`` (the Conformer
  convolution module's ``kernel_size = 31`` convolution, also used by
  torchaudio's Conformer) runs about three times slower on CPU than the same
  convolution written as a ``Conv2d`` of height 1 on a channels-last input.
* :class:`ChannelsLastConv2d`: SpeechBrain's :class:`~speechbrain.nnet.CNN.Conv2d`
  takes ``(batch, time, freq, channels)``, transposes it to
  ``(batch, channels, freq, time)``, pads it with an explicit copy, convolves
  and transposes back; on the conv front-end of a 10 s utterance the strided
  copies cost more than the convolutions. Viewing the input as
  ``(batch, channels, time, freq)`` instead is a channels-last tensor with no
  copy at all, and the convolution's own zero padding replaces ``F.pad``
  (the kernel is transposed to match the swapped axes).
"""

import torch
from speechbrain.nnet.CNN import Conv2d, get_padding_elem


class _StandardGradStrides(torch.autograd.Function):
    """Identity whose gradient gets the parameter's own (row-major) strides.

    The channels-last convolution returns the weight's gradient with other
    strides on its size-1 axis; DDP then warns "Grad strides do not match
    bucket view strides" and copies it on every step."""

    @staticmethod
    def forward(ctx, weight):
        return weight.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clone(memory_format=torch.contiguous_format)


def depthwise_conv1d(conv, x):
    """Applies the depthwise ``torch.nn.Conv1d`` ``conv`` to ``x`` (B, C, T).

    Falls back to ``conv(x)`` when the module is not a plain depthwise
    convolution with zero (numeric) padding.

    Example
    -------
    >>> conv = torch.nn.Conv1d(8, 8, 5, padding=2, groups=8)
    >>> x = torch.rand(2, 8, 30)
    >>> torch.allclose(depthwise_conv1d(conv, x), conv(x), atol=1e-6)
    True
    """
    plain = (
        conv.groups == conv.in_channels == conv.out_channels
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and x.dim() == 3
    )
    if not plain:
        return conv(x)
    weight = conv.weight
    if weight.requires_grad and torch.is_grad_enabled():
        weight = _StandardGradStrides.apply(weight)
    out = torch.nn.functional.conv2d(
        x.unsqueeze(2).contiguous(memory_format=torch.channels_last),
        weight.unsqueeze(2),
        conv.bias,
        stride=(1, conv.stride[0]),
        padding=(0, conv.padding[0]),
        dilation=(1, conv.dilation[0]),
        groups=conv.groups,
    )
    return out.squeeze(2)


class ChannelsLastConv2d(Conv2d):
    """SpeechBrain's ``Conv2d`` (same arguments, parameters and outputs)
    computed on a channels-last view of its ``(batch, time, freq[, channels])``
    input. Configurations other than the default layout with ``"same"``
    zero padding (``padding_mode`` ``"constant"``) run SpeechBrain's code.

    Example
    -------
    >>> fast = ChannelsLastConv2d(8, (3, 3), in_channels=4, stride=2, padding_mode="constant")
    >>> slow = Conv2d(8, (3, 3), in_channels=4, stride=2, padding_mode="constant")
    >>> _ = slow.load_state_dict(fast.state_dict())
    >>> x = torch.rand(2, 25, 20, 4)
    >>> fast(x).shape, torch.allclose(fast(x), slow(x), atol=1e-6)
    (torch.Size([2, 13, 10, 8]), True)
    """

    def _fast_path_applies(self):
        return (
            self.padding == "same"
            and self.padding_mode == "constant"
            and not (self.skip_transpose or self.swap)
            and self.max_norm is None
            and not (self.unsqueeze and self.conv.out_channels == 1)
            and isinstance(self.conv, torch.nn.Conv2d)
            and not torch.nn.utils.parametrize.is_parametrized(self.conv)
        )

    def forward(self, x):
        """``x``: (batch, time, freq) or (batch, time, freq, channels);
        returns (batch, time', freq', out_channels)."""
        if not self._fast_path_applies():
            return super().forward(x)
        if self.unsqueeze:
            x = x.unsqueeze(-1)
        # SpeechBrain pads ``time`` (its last axis) and ``freq`` like this
        (pad_time, _), (pad_freq, _) = (
            get_padding_elem(self.in_channels, self.stride[axis], self.kernel_size[axis],
                             self.dilation[axis])
            for axis in (-1, -2)
        )
        out = torch.nn.functional.conv2d(
            x.permute(0, 3, 1, 2),  # (batch, channels, time, freq), channels-last
            self.conv.weight.transpose(-1, -2),
            self.conv.bias,
            stride=self.stride[::-1],
            padding=(pad_time, pad_freq),
            dilation=self.dilation[::-1],
            groups=self.conv.groups,
        )
        return out.permute(0, 2, 3, 1)
