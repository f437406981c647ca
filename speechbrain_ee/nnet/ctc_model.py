"""Early-exit CTC model: multi-exit encoder + one CTC head per exit."""

import torch


class EarlyExitCTC(torch.nn.Module):
    """Ties an early-exit encoder to its CTC exit heads.

    Every early-exit model of the package (Conformer-CTC here, wav2vec2-CTC in
    :mod:`speechbrain_ee.nnet.wav2vec2`) offers the same incremental interface,
    which the dynamic inference of :mod:`speechbrain_ee.inference` uses:

    * ``exit_layers``: the layer after which each exit sits;
    * ``start(inputs, lengths) -> state`` (an ``EncoderState``);
    * ``step(state, exit_index) -> (state, log_probs)``: computes only the
      layers between ``state.depth`` and that exit, then the exit's head.

    Arguments
    ---------
    encoder : EarlyExitConformerEncoder
        The multi-exit encoder.
    heads : ExitHeads
        One CTC head per exit.

    Example
    -------
    >>> from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.encoder import EarlyExitConformerEncoder
    >>> from speechbrain_ee.nnet.heads import ExitHeads
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=4, exit_layers=[2, 4])
    >>> model = EarlyExitCTC(enc, ExitHeads(16, 11, 2))
    >>> log_probs, lens = model(torch.rand(3, 40, 20), torch.tensor([40, 30, 9]))
    >>> len(log_probs), log_probs[0].shape
    (2, torch.Size([3, 10, 11]))
    """

    def __init__(self, encoder, heads):
        super().__init__()
        if heads.num_exits != encoder.num_exits:
            raise ValueError(
                f"{heads.num_exits} exit heads for {encoder.num_exits} encoder exits"
            )
        self.encoder = encoder
        self.heads = heads

    @property
    def exit_layers(self):
        """Layer (1-based) after which each exit sits."""
        return self.encoder.exit_layers

    @property
    def num_exits(self):
        """Number of exits."""
        return self.encoder.num_exits

    def check_exit(self, exit_index):
        """Raises a clear error when ``exit_index`` is not an exit."""
        self.encoder.check_exit(exit_index)

    def start(self, feats, lengths):
        """Front-end only; see :meth:`EarlyExitConformerEncoder.start`."""
        return self.encoder.start(feats, lengths)

    def step(self, state, exit_index):
        """Runs up to exit ``exit_index``; returns ``(state, log_probs)``."""
        state, out = self.encoder.advance(state, exit_index)
        return state, self.heads(exit_index, out)

    def forward(self, feats, lengths, max_exit=None):
        """Log-posteriors of every exit up to ``max_exit`` (default all) and
        the output frame counts."""
        outputs, out_lengths = self.encoder(feats, lengths, max_exit)
        return [self.heads(i, out) for i, out in enumerate(outputs)], out_lengths
