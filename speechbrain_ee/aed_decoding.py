"""Joint CTC/attention beam search of one exit of an :class:`EarlyExitAED`
(SpeechBrain's ``S2STransformerBeamSearcher`` + ``CTCScorer`` and an
optional ``TransformerLMScorer``)."""

import torch
from speechbrain.decoders.scorer import CTCScorer, ScorerBuilder
from speechbrain.utils.data_utils import undo_padding


def exit_beam_searcher(searcher_factory, model, exit_index, blank_index, eos_index,
                       ctc_weight=0.4, lm_scorer=None, lm_weight=0.0):
    """SpeechBrain beam searcher for exit ``exit_index``.

    Arguments
    ---------
    searcher_factory : callable
        Partial of ``S2STransformerBeamSearcher`` (``bos_index``,
        ``eos_index``, ``beam_size``, ratios...) taking ``modules`` and ``scorer``.
    model : EarlyExitAED
        The model whose exit decoder, CE head and CTC head are used.
    exit_index : int
        The exit.
    blank_index, eos_index : int
        CTC blank and end of sentence.
    ctc_weight : float
        Weight of the CTC prefix score (0: attention only; 1: CTC only).
    lm_scorer : speechbrain.decoders.scorer.TransformerLMScorer, optional
        Language model for shallow fusion.
    lm_weight : float
        Its weight.

    Example
    -------
    >>> from functools import partial
    >>> from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4,)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=2, exit_layers=[1, 2])
    >>> model = EarlyExitAED(enc, ExitHeads(16, 8, 2), [ExitDecoder(8, 16, 2, 32, 1) for _ in range(2)],
    ...                      ExitHeads(16, 8, 2)).eval()
    >>> factory = partial(S2STransformerBeamSearcher, bos_index=1, eos_index=2, beam_size=3,
    ...                   min_decode_ratio=0.0, max_decode_ratio=1.0, using_eos_threshold=False)
    >>> searcher = exit_beam_searcher(factory, model, 0, blank_index=7, eos_index=2)
    >>> enc_out = model.exit_output(model.start(torch.rand(2, 24, 20), torch.tensor([24, 16])), 0)
    >>> hyps = searcher(enc_out, torch.tensor([1.0, 16 / 24]))[0]
    >>> len(hyps)
    2
    """
    full_scorers, weights = [], {}
    if ctc_weight > 0:
        full_scorers.append(CTCScorer(model.ctc_linear(exit_index), blank_index, eos_index))
        weights["ctc"] = ctc_weight
    if lm_scorer is not None and lm_weight > 0:
        full_scorers.append(lm_scorer)
        weights["transformerlm"] = lm_weight
    scorer = ScorerBuilder(weights=weights, full_scorers=full_scorers) if full_scorers else None
    return searcher_factory(modules=model.searcher_modules(exit_index), scorer=scorer)


def token_ids_to_words(token_ids, tokenizer):
    """Words of a hypothesis, dropping ids outside the tokenizer (the CTC
    blank); BOS/EOS are SentencePiece control pieces and decode to nothing.

    Example
    -------
    >>> class Tok:
    ...     def get_piece_size(self): return 4
    ...     def decode_ids(self, ids): return " ".join("abcd"[i] for i in ids)
    >>> token_ids_to_words([0, 3, 4, 1], Tok())
    ['a', 'd', 'b']
    """
    size = tokenizer.get_piece_size()
    return tokenizer.decode_ids([int(t) for t in token_ids if 0 <= int(t) < size]).split()


def beam_search_transcripts(searcher, encoder_out, rel_lens, tokenizer):
    """Best transcript (list of words) of each utterance."""
    with torch.no_grad():
        hyps = searcher(encoder_out, rel_lens)[0]
    return [token_ids_to_words(h, tokenizer) for h in hyps]


def nbest_transcripts(searcher, encoder_out, rel_lens, tokenizer):
    """N-best lists of a searcher built with ``return_topk=True``: per
    utterance a list of ``(words, score)``, best first (the scores are the
    searcher's length-normalised log-scores, what the paper's Eq. 6
    confidence is computed from)."""
    if not searcher.return_topk:
        raise ValueError("nbest_transcripts needs a searcher built with return_topk=True")
    with torch.no_grad():
        hyps, rel_lengths, scores, _ = searcher(encoder_out, rel_lens)
    # the searcher's lengths are relative (SpeechBrain style), as for its 1-best
    return [
        [(token_ids_to_words(tokens, tokenizer), float(score))
         for tokens, score in zip(undo_padding(hyps[b], rel_lengths[b]), scores[b])]
        for b in range(hyps.shape[0])
    ]


def attention_scores(model, exit_index, encoder_out, token_lists, bos_index, eos_index):
    """Teacher-forced log-probability, under exit ``exit_index``'s decoder, of
    each token sequence followed by EOS (the attention half of attention
    rescoring).

    Arguments
    ---------
    model : EarlyExitAED
        The model (its ``decoders`` and ``ce_heads``).
    exit_index : int
        The exit whose decoder scores.
    encoder_out : torch.Tensor
        That exit's states for one utterance, ``(1, time, d_model)``.
    token_lists : list of list of int
        The hypotheses' token ids (no BOS/EOS).
    bos_index, eos_index : int
        Decoder start token and end of sentence.

    Returns
    -------
    list of float
        One summed log-probability per hypothesis.

    Example
    -------
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4,)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=2, exit_layers=[1, 2])
    >>> model = EarlyExitAED(enc, ExitHeads(16, 8, 2), [ExitDecoder(8, 16, 2, 32, 1) for _ in range(2)],
    ...                      ExitHeads(16, 8, 2)).eval()
    >>> out = model.exit_output(model.start(torch.rand(1, 24, 20), torch.tensor([24])), 1)
    >>> scores = attention_scores(model, 1, out, [[3, 4], [5]], bos_index=1, eos_index=2)
    >>> len(scores), all(s < 0 for s in scores)
    (2, True)
    """
    if not token_lists:
        return []
    count, longest = len(token_lists), max(len(t) for t in token_lists) + 1
    inputs = torch.full((count, longest), bos_index, dtype=torch.long, device=encoder_out.device)
    targets = torch.full((count, longest), -1, dtype=torch.long, device=encoder_out.device)
    for row, tokens in enumerate(token_lists):
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=encoder_out.device)
        inputs[row, 1 : len(tokens) + 1] = tokens  # BOS, tokens, then padding the causal mask hides
        targets[row, : len(tokens)] = tokens
        targets[row, len(tokens)] = eos_index
    memory = encoder_out.expand(count, -1, -1)
    memory_lengths = torch.full((count,), encoder_out.shape[1], device=encoder_out.device)
    with torch.no_grad():
        log_probs = model.ce_heads(exit_index, model.decoders[exit_index](inputs, memory, memory_lengths))
    real = targets >= 0
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * real).sum(dim=1).tolist()
