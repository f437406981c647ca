"""Early-exit attention encoder-decoder (AED): a multi-exit Conformer encoder
with, at every exit, a CTC head and its own Transformer decoder + CE head."""

import torch
from speechbrain.lobes.models.transformer.Transformer import (
    NormalizedEmbedding,
    PositionalEncoding,
    TransformerDecoder,
    get_lookahead_mask,
)

from speechbrain_ee.nnet.lengths import in_convention
from speechbrain_ee.nnet.ctc_model import EarlyExitCTC
from speechbrain_ee.nnet.dropout import use_fast_dropout
from speechbrain_ee.nnet.lengths import length_mask


class ExitDecoder(torch.nn.Module):
    """Target embedding + sinusoidal positions + SpeechBrain
    ``TransformerDecoder`` attending to one exit's encoder states.

    Its :meth:`decode` has the signature ``S2STransformerBeamSearcher``
    calls on ``modules[0]``, so ``[decoder, ce_linear]`` are that searcher's
    modules as they are.

    Arguments
    ---------
    num_classes : int
        Size of the token embedding table (vocabulary incl. BOS/EOS).
    d_model, nhead, d_ffn, num_layers : int
        Decoder size.
    dropout : float
        Decoder dropout.

    Example
    -------
    >>> dec = ExitDecoder(11, d_model=16, nhead=2, d_ffn=32, num_layers=1)
    >>> memory, enc_len = torch.rand(2, 7, 16), torch.tensor([7, 4])
    >>> dec(torch.randint(0, 11, (2, 5)), memory, enc_len).shape
    torch.Size([2, 5, 16])
    >>> dec.decode(torch.tensor([[1], [1]]), memory, enc_len)[0].shape
    torch.Size([2, 1, 16])
    """

    def __init__(self, num_classes, d_model, nhead, d_ffn, num_layers, dropout=0.1):
        super().__init__()
        self.embedding = NormalizedEmbedding(d_model, num_classes)
        self.positional_encoding = PositionalEncoding(d_model)
        self.decoder = TransformerDecoder(
            num_layers=num_layers, nhead=nhead, d_ffn=d_ffn, d_model=d_model,
            dropout=dropout, activation=torch.nn.GELU, normalize_before=True,
        )
        use_fast_dropout(self)

    def forward(self, tokens, memory, memory_lengths):
        """Decoder states ``(batch, tgt_len, d_model)`` for the (BOS-prefixed)
        ``tokens`` given encoder states ``memory`` with ``memory_lengths``
        real frames. The causal mask keeps every real position blind to the
        target padding that follows it, so no target padding mask is needed."""
        return self._run(tokens, memory, memory_lengths)[0]

    def _run(self, tokens, memory, memory_lengths):
        """Decoder states and the cross-attention maps of every layer."""
        tgt = self.embedding(tokens)
        tgt = tgt + self.positional_encoding(tgt)
        out, _, attns = self.decoder(
            tgt, memory,
            tgt_mask=get_lookahead_mask(tokens),
            memory_key_padding_mask=~length_mask(memory_lengths, memory.shape[1]),
        )
        return out, attns

    @torch.no_grad()
    def decode(self, tgt, encoder_out, enc_len=None):
        """One beam-search step (``TransformerASR.decode`` signature):
        ``(states, last-layer cross-attention)``; ``enc_len`` are absolute
        frame counts (all frames when None)."""
        if enc_len is None:
            enc_len = torch.full((encoder_out.shape[0],), encoder_out.shape[1], device=encoder_out.device)
        out, attns = self._run(tgt, encoder_out, enc_len.long())
        return out, attns[-1]


def exit_decoders(num_exits, num_classes, d_model, nhead, d_ffn, num_layers, dropout=0.1):
    """``num_exits`` independent :class:`ExitDecoder` (one per exit; for yaml files).

    Example
    -------
    >>> len(exit_decoders(3, 11, 16, 2, 32, 1))
    3
    """
    return [ExitDecoder(num_classes, d_model, nhead, d_ffn, num_layers, dropout) for _ in range(num_exits)]


class SearcherLinear(torch.nn.Module):
    """A ``torch.nn.Linear`` seen as SpeechBrain's ``Linear`` (SpeechBrain's
    searchers read the output size from ``fc.w.out_features``)."""

    def __init__(self, linear):
        super().__init__()
        self.w = linear

    def forward(self, x):
        """Logits."""
        return self.w(x)


class EarlyExitAED(EarlyExitCTC):
    """Multi-exit Conformer encoder with, at every exit, a CTC head, a
    separate Transformer decoder and its CE (sequence) head.

    Offers the interface of :class:`~speechbrain_ee.nnet.EarlyExitCTC`
    (``exit_layers``, ``start``, ``step`` returning the exit's CTC
    log-posteriors, ``forward`` -> per-exit CTC log-posteriors), so the
    dynamic inference can stop on CTC confidence, plus what decoding an exit
    with its attention decoder needs: :meth:`exit_output`,
    :meth:`forward_joint` (training) and :meth:`searcher_modules`.

    Arguments
    ---------
    encoder : EarlyExitConformerEncoder
        The multi-exit encoder.
    ctc_heads : ExitHeads
        One CTC head per exit (classes = vocabulary + blank).
    decoders : list of ExitDecoder
        One decoder per exit.
    ce_heads : ExitHeads
        One sequence head per exit, over the same classes as ``ctc_heads``
        (so SpeechBrain's ``CTCScorer`` and the decoder score the same
        vocabulary; the blank is never a decoder target).
    self_condition : bool
        Self-conditioned CTC on the CTC heads (see :class:`EarlyExitCTC`).

    Example
    -------
    >>> from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.encoder import EarlyExitConformerEncoder
    >>> from speechbrain_ee.nnet.heads import ExitHeads
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=4, exit_layers=[2, 4])
    >>> decs = [ExitDecoder(11, 16, 2, 32, 1) for _ in range(2)]
    >>> model = EarlyExitAED(enc, ExitHeads(16, 11, 2), decs, ExitHeads(16, 11, 2))
    >>> ctc, seq, lens = model.forward_joint(torch.rand(3, 40, 20), torch.tensor([40, 30, 9]),
    ...                                      torch.randint(0, 10, (3, 6)))
    >>> len(seq), seq[1].shape, ctc[0].shape
    (2, torch.Size([3, 6, 11]), torch.Size([3, 10, 11]))
    """

    def __init__(self, encoder, ctc_heads, decoders, ce_heads, self_condition=False):
        super().__init__(encoder, ctc_heads, self_condition)  # CTC side: exits, start/step/forward
        for name, count in (("decoders", len(decoders)), ("CE heads", ce_heads.num_exits)):
            if count != encoder.num_exits:
                raise ValueError(f"{count} {name} for {encoder.num_exits} encoder exits")
        self.decoders = torch.nn.ModuleList(decoders)
        self.ce_heads = ce_heads

    @property
    def ctc_heads(self):
        """The CTC exit heads (``heads`` of :class:`EarlyExitCTC`)."""
        return self.heads

    def exit_output(self, state, exit_index):
        """Encoder states of exit ``exit_index`` (computing the missing layers
        if ``state`` is below it): what that exit's decoder attends to."""
        return self.advance(state, exit_index)[1]

    def forward_joint(self, feats, lengths, tokens_bos, max_exit=None, return_states=False,
                      decoder_exits=None):
        """Teacher-forced training pass.

        Returns per-exit CTC log-posteriors ``(B, T, C)``, per-exit decoder
        log-posteriors ``(B, L, C)`` for the BOS-prefixed ``tokens_bos``, the
        output lengths (relative when ``lengths`` are, else frame counts) and, with ``return_states``, the exit outputs.
        With ``decoder_exits`` (exit indices), only those exits' decoders run;
        the others' decoder entries are None.
        """
        outputs, out_lengths = self.exit_outputs(feats, lengths, max_exit)  # frame counts
        if decoder_exits is None:
            decoder_exits = range(len(outputs))
        run = set(decoder_exits)
        if not run <= set(range(len(outputs))):
            raise ValueError(f"decoder_exits {sorted(run)} outside the {len(outputs)} exits computed")
        ctc = [self.ctc_heads(i, out) for i, out in enumerate(outputs)]
        seq = [self.ce_heads(i, self.decoders[i](tokens_bos, out, out_lengths)) if i in run else None
               for i, out in enumerate(outputs)]
        out_lengths = in_convention(out_lengths, outputs[0].shape[1], torch.as_tensor(lengths).is_floating_point())
        if return_states:
            return ctc, seq, out_lengths, outputs
        return ctc, seq, out_lengths

    def forward(self, feats, lengths, tokens_bos=None, max_exit=None, return_states=False,
                decoder_exits=None):
        """Without ``tokens_bos``: the CTC side (per-exit log-posteriors and
        output lengths, as :class:`EarlyExitCTC`); with it, the teacher-forced
        pass of :meth:`forward_joint`. Training goes through ``forward`` so
        that a DDP wrapper sees the pass."""
        if tokens_bos is None:
            return super().forward(feats, lengths, max_exit)
        return self.forward_joint(feats, lengths, tokens_bos, max_exit, return_states, decoder_exits)

    def searcher_modules(self, exit_index):
        """``[decoder, ce_linear]``: the ``modules`` of SpeechBrain's
        ``S2STransformerBeamSearcher`` for this exit."""
        self.check_exit(exit_index)
        linear = self.ce_heads.linears[0 if self.ce_heads.shared else exit_index]
        return [self.decoders[exit_index], SearcherLinear(linear)]

    def ctc_linear(self, exit_index):
        """The exit's CTC linear layer (``ctc_fc`` of SpeechBrain's ``CTCScorer``)."""
        self.check_exit(exit_index)
        return self.ctc_heads.linears[0 if self.ctc_heads.shared else exit_index]
