"""Turning exit posteriors into words (greedy CTC and SpeechBrain's prefix beam search)."""

import speechbrain as sb


def ctc_vocab_list(tokenizer, blank_index):
    """Token strings of a SentencePiece model with the CTC blank inserted at
    ``blank_index`` (the list SpeechBrain's CTC beam searchers expect)."""
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]
    pieces.insert(blank_index, "<blank>")
    return pieces


def greedy_transcripts(log_probs, rel_lens, blank_index, tokenizer):
    """Greedy CTC decoding: one transcript (list of words) per utterance."""
    token_ids = sb.decoders.ctc_greedy_decode(log_probs, rel_lens, blank_id=blank_index)
    return [tokenizer.decode_ids([int(t) for t in ids]).split() for ids in token_ids]


def beam_transcripts(searcher, log_probs, rel_lens):
    """Best transcript (list of words) of each utterance from a CTC beam searcher."""
    hyps = searcher(log_probs, rel_lens)
    return [h[0].text.split() if h else [] for h in hyps]


def transcript_lm_rescorer(language_model, tokenizer, weight, bos_index, eos_index, device="cpu"):
    """SpeechBrain's N-best rescorer (``RescorerBuilder`` with one
    ``TransformerLMRescorer``): adds ``weight`` x the LM log-probability of
    each hypothesis (``bos``, its tokens, ``eos``) to its decoder score.

    Arguments
    ---------
    language_model : speechbrain.lobes.models.transformer.TransformerLM.TransformerLM
        An LM over the tokenizer's pieces (e.g. the recipe's transcript LM).
    tokenizer : sentencepiece.SentencePieceProcessor
        The ASR model's tokenizer (the LM's vocabulary).
    weight : float
        LM weight (> 0).
    bos_index, eos_index : int
        The LM's sentence start and end (a CTC model's tokenizer has no
        BOS/EOS pieces: its LM uses the blank as EOS and one class beyond it as BOS).
    device : str
        Where the LM runs.
    """
    from speechbrain.decoders.scorer import RescorerBuilder, TransformerLMRescorer

    weight = float(weight)
    if not weight > 0:
        raise ValueError(f"lm_weight must be > 0 to rescore with the LM, got {weight!r}")
    rescorer = TransformerLMRescorer(
        language_model=language_model, tokenizer=tokenizer, device=device,
        bos_index=bos_index, eos_index=eos_index, pad_index=0,
    )
    return RescorerBuilder(weights={"transformerlm": weight}, rescorers=[rescorer])


def hparams_lm_rescorer(hparams, device="cpu"):
    """:func:`transcript_lm_rescorer` of a recipe's or an exported model's
    hparams (an object with attributes: ``lm_model``, ``lm_weight``,
    ``tokenizer``, ``lm_bos_index``, ``lm_eos_index``); None without an LM
    or with ``lm_weight`` 0. The LM is moved to ``device``."""
    lm = getattr(hparams, "lm_model", None)
    weight = getattr(hparams, "lm_weight", 0.0) or 0.0
    if lm is None or weight == 0:
        return None
    return transcript_lm_rescorer(
        lm.to(device).eval(), hparams.tokenizer, weight,
        bos_index=hparams.lm_bos_index, eos_index=hparams.lm_eos_index, device=device,
    )


def rescored_beam_transcripts(searcher, log_probs, rel_lens, rescorer):
    """Best transcript (list of words) of each utterance after rescoring the
    N-best list of a CTC beam searcher (built with ``topk`` > 1 and
    ``prune_history=False``, e.g. :func:`speechbrain_ee.selection.measures.nbest_searcher`)
    with ``rescorer`` (:func:`transcript_lm_rescorer`)."""
    transcripts = []
    for hyps in searcher(log_probs, rel_lens):
        if not hyps:
            transcripts.append([])
            continue
        ranked, _ = rescorer.rescore([[h.text for h in hyps]], [[h.lm_score for h in hyps]])
        transcripts.append(ranked[0][0].split())
    return transcripts
