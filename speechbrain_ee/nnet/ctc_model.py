"""Early-exit CTC model: multi-exit encoder + one CTC head per exit."""

from dataclasses import replace

import torch

from speechbrain_ee.nnet.lengths import as_counts, in_convention


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
    self_condition : bool
        Self-conditioned CTC (Nozaki & Komatsu, 2021): the posteriors of every
        exit but the last, projected back to the model dimension by one shared
        linear layer, are added to the states the next layers read. A model
        run to exit ``k`` then goes exit by exit (each exit's head is needed
        on the way); it still never computes a layer above exit ``k``.

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
    >>> conditioned = EarlyExitCTC(enc, ExitHeads(16, 11, 2), self_condition=True)
    >>> conditioned(torch.rand(3, 40, 20), torch.tensor([40, 30, 9]))[0][1].shape
    torch.Size([3, 10, 11])
    """

    def __init__(self, encoder, heads, self_condition=False):
        super().__init__()
        if heads.num_exits != encoder.num_exits:
            raise ValueError(
                f"{heads.num_exits} exit heads for {encoder.num_exits} encoder exits"
            )
        self.encoder = encoder
        self.heads = heads
        self.conditioning = None
        if self_condition:
            head = heads.linears[0]
            self.conditioning = torch.nn.Linear(head.out_features, head.in_features)

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
        """Front-end only; see :meth:`EarlyExitConformerEncoder.start`
        (``lengths`` relative, SpeechBrain's convention, or integer counts)."""
        return self.encoder.start(feats, as_counts(lengths, feats.shape[1])[0])

    def advance(self, state, exit_index):
        """The encoder's ``advance`` (``(state, exit_output)``), through
        every exit on the way when the model is self-conditioned."""
        if self.conditioning is None or state.exit_index == exit_index:
            return self.encoder.advance(state, exit_index)
        self.check_exit(exit_index)
        first = 0 if state.exit_index is None else state.exit_index + 1
        output = None
        for index in range(first, exit_index + 1):
            state, output = self.encoder.advance(self._condition(state), index)
        if output is None:  # exit_index is below the state's exit
            return self.encoder.advance(state, exit_index)  # raises the encoder's error
        return state, output

    def _condition(self, state):
        """Adds the projected posteriors of the exit ``state`` stands at
        (none at depth 0) to its hidden states."""
        if state.exit_index is None or state.exit_output is None:
            return state
        posteriors = self.heads(state.exit_index, state.exit_output).exp()
        return replace(state, hidden=state.hidden + self.conditioning(posteriors),
                       exit_output=None, exit_index=None)

    def step(self, state, exit_index):
        """Runs up to exit ``exit_index``; returns ``(state, log_probs)``."""
        state, out = self.advance(state, exit_index)
        return state, self.heads(exit_index, out)

    def exit_outputs(self, feats, lengths, max_exit=None):
        """Normalised outputs of every exit up to ``max_exit`` (default: all)
        and the output frame counts (integers, whatever the convention of
        ``lengths``)."""
        last = self.num_exits - 1 if max_exit is None else max_exit
        self.check_exit(last)
        state, outputs = self.start(feats, lengths), []
        for exit_index in range(last + 1):
            state, out = self.advance(state, exit_index)
            outputs.append(out)
        return outputs, state.lengths

    def forward(self, feats, lengths, max_exit=None):
        """Log-posteriors of every exit up to ``max_exit`` (default all) and
        the output lengths, in the convention of ``lengths``: relative
        (SpeechBrain's, e.g. ``tensor([1.0, 0.75])``) or integer frame counts."""
        outputs, out_lengths = self.exit_outputs(feats, lengths, max_exit)
        out_lengths = in_convention(out_lengths, outputs[0].shape[1], torch.as_tensor(lengths).is_floating_point())
        return [self.heads(i, out) for i, out in enumerate(outputs)], out_lengths
