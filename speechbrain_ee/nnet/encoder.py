"""Multi-exit Conformer encoder that can stop at any exit.

The layers are SpeechBrain's :class:`ConformerEncoderLayer` (RelPosMHAXL
attention by default). Two things differ from SpeechBrain's
:class:`ConformerEncoder`:

* each exit has its own LayerNorm (SpeechBrain's hidden states are taken
  before its single final norm, so they are not usable as they are);
* the encoder runs **incrementally**: :meth:`EarlyExitConformerEncoder.start`
  runs the front-end, :meth:`EarlyExitConformerEncoder.advance` runs only the
  layers between the current depth and a requested exit. A caller that stops
  at exit ``k`` never computes a layer above it, and :meth:`EncoderState.select`
  drops finished utterances from the batch (batch compaction).
"""

from dataclasses import dataclass, replace
from typing import List, Optional

import torch
from speechbrain.lobes.models.transformer.Conformer import (
    ConformerEncoderLayer,
    ConvolutionModule,
)
from speechbrain.lobes.models.transformer.Transformer import RelPosEncXL
from speechbrain.nnet.activations import Swish

from speechbrain_ee.nnet.attention import FastRelPosMHAXL
from speechbrain_ee.nnet.dropout import use_fast_dropout
from speechbrain_ee.nnet.fast_conv import depthwise_conv1d
from speechbrain_ee.nnet.gradient_equilibrium import equilibrium_branch
from speechbrain_ee.nnet.lengths import as_counts, check_exit_layers, in_convention, length_mask


class MaskedConvolutionModule(ConvolutionModule):
    """Conformer convolution module that zeroes padded frames *before* the
    depthwise convolution, so that padding never leaks into real frames
    (SpeechBrain only masks its output). Same parameters as SpeechBrain's
    module, computed in the (batch, time, channels) layout throughout (the
    1x1 bottleneck convolution as a linear layer, the depthwise one with
    :func:`depthwise_conv1d`), which saves the layout copies on CPU."""

    def forward(self, x, mask=None, dynchunktrain_config=None):
        """``x``: (batch, time, channels); ``mask``: (batch, time, 1), True on padding."""
        if dynchunktrain_config is not None:
            return super().forward(x, mask, dynchunktrain_config)
        pointwise = self.bottleneck[0]
        out = torch.nn.functional.linear(self.layer_norm(x), pointwise.weight.squeeze(-1), pointwise.bias)
        out = torch.nn.functional.glu(out, dim=-1)
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        out = depthwise_conv1d(self.conv, out.transpose(1, 2))
        if self.causal:
            out = out[..., : -self.padding]
        out = self.after_conv(out.transpose(1, 2))
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out


class EarlyExitConformerLayer(ConformerEncoderLayer):
    """SpeechBrain's Conformer layer with :class:`MaskedConvolutionModule` and,
    for RelPosMHAXL, the faster :class:`FastRelPosMHAXL` (same parameters)."""

    def __init__(self, d_model, d_ffn, nhead, kernel_size=31, activation=Swish, bias=True,
                 dropout=0.0, causal=False, attention_type="RelPosMHAXL"):
        super().__init__(d_model=d_model, d_ffn=d_ffn, nhead=nhead, kernel_size=kernel_size,
                         activation=activation, bias=bias, dropout=dropout, causal=causal,
                         attention_type=attention_type)
        self.convolution_module = MaskedConvolutionModule(
            d_model, kernel_size, bias, activation, dropout, causal=causal
        )
        if attention_type == "RelPosMHAXL":
            self.mha_layer = FastRelPosMHAXL.from_relpos(self.mha_layer)


@dataclass
class EncoderState:
    """Where an incremental encoder run stands.

    Attributes
    ----------
    hidden : torch.Tensor
        Output of the last computed layer (before any exit norm), (batch, time, d_model).
    lengths : torch.Tensor
        Real frame count of each utterance.
    depth : int
        Number of Conformer layers computed so far.
    index : torch.Tensor
        Position of each remaining utterance in the original batch.
    pos_embs : torch.Tensor, optional
        Relative positional embeddings for ``hidden``'s length, kept from one
        ``advance`` to the next (None: not computed yet).
    exit_output, exit_index : torch.Tensor, int, optional
        The last exit's normalised output and its index, so that a second
        consumer of the same exit (a selector and a decoder both reading
        the states) does not normalise again.
    """

    hidden: torch.Tensor
    lengths: torch.Tensor
    depth: int
    index: torch.Tensor
    pos_embs: Optional[torch.Tensor] = None
    exit_output: Optional[torch.Tensor] = None
    exit_index: Optional[int] = None

    def select(self, keep):
        """Keeps the utterances where ``keep`` is True and trims the padding
        to the longest one left."""
        lengths = self.lengths[keep]
        max_len = int(lengths.max()) if lengths.numel() else 0
        pos_embs = self.pos_embs if max_len == self.hidden.shape[1] else None
        exit_output = None if self.exit_output is None else self.exit_output[keep, :max_len]
        return replace(
            self, hidden=self.hidden[keep, :max_len], lengths=lengths, index=self.index[keep],
            pos_embs=pos_embs, exit_output=exit_output,
        )

    @property
    def padding_mask(self):
        """True on padded frames, (batch, time)."""
        return ~length_mask(self.lengths, self.hidden.shape[1])


class EarlyExitConformerEncoder(torch.nn.Module):
    """Conformer encoder with exits after chosen layers.

    Arguments
    ---------
    frontend : torch.nn.Module
        Sub-sampling front-end taking ``(feats, lengths)`` and returning
        ``(x, lengths)`` with an ``output_size`` attribute, e.g.
        :class:`speechbrain_ee.nnet.frontend.MaskedConvFrontEnd`.
    d_model, nhead, d_ffn, kernel_size, dropout, activation, attention_type
        As in SpeechBrain's Conformer.
    num_layers : int
        Conformer layers.
    exit_layers : list of int
        1-based layer indices after which an exit is placed (the last one
        need not be ``num_layers``; deeper layers are then never built).
    gradient_equilibrium : bool
        Gradient equilibrium (Li et al. 2019, see
        :mod:`speechbrain_ee.nnet.gradient_equilibrium`): in training only
        (``self.training`` and autograd on), the gradient reaching the
        states at exit ``i``'s branch point (1-based, of ``n``) is
        ``g_exit / (n - i + 1) + (n - i) / (n - i + 1) * g_above``, so the
        shallow layers get the mean of the gradients of the losses above
        them rather than their sum. The forward outputs are unchanged.
        It assumes a training pass that visits every exit in order (as
        ``forward`` and the models' ``exit_outputs`` do); with
        self-conditioning (:class:`~speechbrain_ee.nnet.ctc_model.EarlyExitCTC`)
        the conditioning, which reads the exit's output, counts as the
        exit's branch. Default False (the plain sum of the exits' gradients,
        Eq. 2); no parameter depends on it, so checkpoints and exported
        models load either way.

    Example
    -------
    >>> from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=4, exit_layers=[2, 4])
    >>> outs, lens = enc(torch.rand(3, 40, 20), torch.tensor([40, 30, 9]))
    >>> [o.shape for o in outs], lens.tolist()
    ([torch.Size([3, 10, 16]), torch.Size([3, 10, 16])], [10, 8, 3])
    """

    def __init__(self, frontend, d_model=256, nhead=8, d_ffn=2048, num_layers=12,
                 exit_layers=(2, 4, 6, 8, 10, 12), kernel_size=31, dropout=0.1,
                 activation=Swish, attention_type="RelPosMHAXL", gradient_equilibrium=False):
        super().__init__()
        exit_layers = check_exit_layers(exit_layers, num_layers)
        self.exit_layers = exit_layers
        self.gradient_equilibrium = bool(gradient_equilibrium)
        self.attention_type = attention_type
        self.frontend = frontend
        self.input_projection = torch.nn.Sequential(
            torch.nn.Linear(frontend.output_size, d_model), torch.nn.Dropout(dropout)
        )
        self.positional_encoding = RelPosEncXL(d_model) if attention_type == "RelPosMHAXL" else None
        self.layers = torch.nn.ModuleList(
            EarlyExitConformerLayer(d_model, d_ffn, nhead, kernel_size, activation,
                                    dropout=dropout, attention_type=attention_type)
            for _ in range(exit_layers[-1])
        )
        self.exit_norms = torch.nn.ModuleList(
            torch.nn.LayerNorm(d_model, eps=1e-6) for _ in exit_layers
        )
        use_fast_dropout(self)  # front-end included

    @property
    def num_exits(self):
        """Number of exits."""
        return len(self.exit_layers)

    def check_exit(self, exit_index):
        """Raises a clear error when ``exit_index`` (0-based) is not an exit."""
        if not isinstance(exit_index, int) or not 0 <= exit_index < self.num_exits:
            raise ValueError(
                f"exit index {exit_index!r} is not an exit: valid indices are "
                f"0..{self.num_exits - 1} (after layers {self.exit_layers})"
            )

    def start(self, feats, lengths):
        """Runs the front-end: returns the :class:`EncoderState` at depth 0.

        Arguments
        ---------
        feats : torch.Tensor
            Normalised features, (batch, time, n_feats).
        lengths : torch.Tensor
            Relative lengths (SpeechBrain's convention) or real frame counts
            (integers); the state holds frame counts.
        """
        x, lengths = self.frontend(feats, as_counts(lengths, feats.shape[1])[0])
        index = torch.arange(x.shape[0], device=x.device)
        return EncoderState(self.input_projection(x), lengths, 0, index)

    def advance(self, state, exit_index):
        """Computes the layers up to exit ``exit_index`` (0-based) and returns
        ``(new_state, exit_output)``; the exit output is normalised by that
        exit's LayerNorm."""
        self.check_exit(exit_index)
        target = self.exit_layers[exit_index]
        if target < state.depth:
            raise ValueError(f"exit {exit_index} (layer {target}) is below the current depth {state.depth}")
        if state.exit_index == exit_index and state.exit_output is not None:
            return state, state.exit_output  # at this exit already (depth == target): normalised once
        hidden, pos_embs = state.hidden, state.pos_embs
        branch = hidden
        if target > state.depth and hidden.shape[0] > 0:
            padding_mask = state.padding_mask
            if pos_embs is None and self.positional_encoding is not None:
                pos_embs = self.positional_encoding(hidden)  # once per run (and length)
            for layer in self.layers[state.depth:target]:
                hidden, _ = layer(hidden, src_key_padding_mask=padding_mask, pos_embs=pos_embs)
            branch = hidden
            if self.equilibrium_active():  # branch point of this exit: rescale the gradients
                branch, hidden = equilibrium_branch(hidden, exit_index, self.num_exits)
        output = self.exit_norms[exit_index](branch)
        state = replace(state, hidden=hidden, depth=target, pos_embs=pos_embs,
                        exit_output=output, exit_index=exit_index)
        return state, output

    def equilibrium_active(self):
        """Whether :meth:`advance` rescales gradients now: gradient
        equilibrium is on, the encoder is training and autograd records."""
        return getattr(self, "gradient_equilibrium", False) and self.training and torch.is_grad_enabled()

    def forward(self, feats, lengths, max_exit: Optional[int] = None) -> List[torch.Tensor]:
        """Outputs of every exit up to ``max_exit`` (default: all), each
        (batch, time, d_model), and the output lengths in the convention of
        ``lengths`` (relative, or frame counts)."""
        last = self.num_exits - 1 if max_exit is None else max_exit
        self.check_exit(last)
        counts, relative = as_counts(lengths, feats.shape[1])
        state = self.start(feats, counts)
        outputs = []
        for exit_index in range(last + 1):
            state, out = self.advance(state, exit_index)
            outputs.append(out)
        return outputs, in_convention(state.lengths, outputs[0].shape[1], relative)
