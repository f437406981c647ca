"""Dynamic-depth inference: run the encoder exit by exit and let a selector
decide which utterances stop; those leave the batch (batch compaction), the
others go on. No utterance ever has a layer above its exit computed."""

from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class DynamicResult:
    """Outcome of :func:`run_dynamic`, one entry per utterance (input order).

    Attributes
    ----------
    exits : list of int
        Exit (0-based) each utterance left at.
    layers : list of int
        Encoder layers computed for it (the layer of its exit).
    log_probs : list of torch.Tensor
        Log-posteriors at that exit, trimmed to the utterance's length, ``(T_i, vocab)``.
    hypotheses : list of str, optional
        Transcripts when a ``decode_fn`` was given.
    """

    exits: List[int]
    layers: List[int]
    log_probs: List[torch.Tensor]
    hypotheses: Optional[List[str]] = None


def exit_extras(consumer, model, state, exit_index, rows=None):
    """Keyword arguments for a decoder or selector that reads the exit's
    encoder states (``needs_exit_output``, e.g. the attention decoder of an
    :class:`~speechbrain_ee.nnet.aed_model.EarlyExitAED`): ``exit_output``
    (of the utterances ``rows``, a bool mask, or all) and ``exit_index``;
    ``{}`` for those that read the posteriors only."""
    if not getattr(consumer, "needs_exit_output", False):
        return {}
    exit_output = model.exit_output(state, exit_index)
    return {"exit_output": exit_output if rows is None else exit_output[rows], "exit_index": exit_index}


@torch.no_grad()
def run_dynamic(model, inputs, lengths, selector, decode_fn=None):
    """Early-exit inference of a batch.

    Arguments
    ---------
    model : EarlyExitCTC
        Any model with ``exit_layers``, ``num_exits``,
        ``start(inputs, lengths) -> state`` and
        ``step(state, exit_index) -> (state, log_probs)``, whose state has
        ``lengths``, ``index`` and ``select(keep)`` (put it in eval mode).
    inputs : torch.Tensor
        Model inputs (features or waveforms), batch first.
    lengths : torch.Tensor
        Their real lengths (integers).
    selector : speechbrain_ee.selection.ExitSelector
        Asked at every exit but the last which remaining utterances stop.
    decode_fn : callable, optional
        ``(log_probs, lengths) -> list of str``; required by selectors that
        read transcripts (patience, agreement). One with
        ``needs_exit_output`` (attention decoding) also gets the exit's
        states, see :func:`exit_extras`.

    Returns
    -------
    DynamicResult

    Example
    -------
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
    >>> from speechbrain_ee.selection import LayerBudgetSelector
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=4, exit_layers=[2, 4])
    >>> model = EarlyExitCTC(enc, ExitHeads(16, 11, 2)).eval()
    >>> out = run_dynamic(model, torch.rand(2, 40, 20), torch.tensor([40, 21]), LayerBudgetSelector(3))
    >>> out.exits, out.layers, [lp.shape[0] for lp in out.log_probs]
    ([0, 0], [2, 2], [10, 6])
    """
    if selector.needs_transcripts and decode_fn is None:
        raise ValueError(f"{selector!r} reads transcripts: run_dynamic needs a decode_fn")
    exit_layers = list(model.exit_layers)
    last = len(exit_layers) - 1
    first = selector.start(exit_layers)
    batch = inputs.shape[0]
    exits, layers, log_probs_out = [None] * batch, [None] * batch, [None] * batch
    hypotheses = [None] * batch if decode_fn is not None else None

    state = model.start(inputs, lengths)
    for exit_index in range(first, last + 1):
        state, log_probs = model.step(state, exit_index)
        out_lens = state.lengths
        transcripts = None
        if selector.needs_transcripts:
            transcripts = decode_fn(log_probs, out_lens, **exit_extras(decode_fn, model, state, exit_index))
        if exit_index == last:
            stop = torch.ones(len(out_lens), dtype=torch.bool)
        else:
            measures = selector.measure(
                log_probs, out_lens, transcripts, **exit_extras(selector, model, state, exit_index)
            )
            stop = torch.as_tensor(selector.decide(exit_index, measures, state.index))
            if stop.dtype != torch.bool or stop.shape != out_lens.shape:
                raise ValueError(
                    f"{selector!r}.decide must return one bool per remaining utterance "
                    f"({tuple(out_lens.shape)}), got {stop.dtype} {tuple(stop.shape)}"
                )
        stop = stop.to(log_probs.device)
        rows = torch.nonzero(stop).flatten().tolist()
        if decode_fn is not None and transcripts is None and rows:
            extras = exit_extras(decode_fn, model, state, exit_index, stop)
            transcripts = dict(zip(rows, decode_fn(log_probs[stop], out_lens[stop], **extras)))
        for row in rows:
            utt = int(state.index[row])
            exits[utt], layers[utt] = exit_index, exit_layers[exit_index]
            log_probs_out[utt] = log_probs[row, : int(out_lens[row])]
            if hypotheses is not None:
                hypotheses[utt] = transcripts[row]
        if len(rows) == len(stop):
            break
        if rows:  # compaction copies the states: only when someone stopped
            state = state.select(~stop)
    return DynamicResult(exits, layers, log_probs_out, hypotheses)
