"""Exit posteriors -> text, as the ``decode_fn`` of dynamic inference and of the sweep."""

from functools import partial

import torch
from speechbrain.decoders.ctc import CTCPrefixBeamSearcher

from speechbrain_ee.aed_decoding import (
    attention_scores, beam_search_transcripts, exit_beam_searcher, nbest_transcripts,
)
from speechbrain_ee.checks import check_number
from speechbrain_ee.decoding import (
    beam_transcripts, best_rescored, ctc_vocab_list, describe_rescorer, greedy_transcripts,
    hparams_nbest_rescorer, rescored_beam_transcripts,
)
from speechbrain_ee.selection.measures import nbest_searcher


class CTCTextDecoder:
    """Callable ``(log_probs, lengths) -> list of str`` with integer lengths.

    Arguments
    ---------
    tokenizer : sentencepiece.SentencePieceProcessor
        The model's tokenizer.
    blank_index : int
        CTC blank (the last class in this package).
    beam_size : int
        0 for greedy CTC, else SpeechBrain's ``CTCPrefixBeamSearcher`` with this beam.
    rescorer : speechbrain.decoders.scorer.RescorerBuilder, optional
        Rescores the beam's N-best list (all ``beam_size`` hypotheses), e.g.
        :func:`speechbrain_ee.decoding.nbest_rescorer` (LM and/or lexicon); beam search only.

    Example
    -------
    >>> class Chars:  # a stand-in for a SentencePiece processor
    ...     def get_piece_size(self): return 2
    ...     def id_to_piece(self, i): return "▁ab"[i + 1]
    ...     def decode_ids(self, ids): return "".join("ab"[i] for i in ids)
    >>> log_probs = torch.log_softmax(torch.tensor([[[5.0, 0, 0], [0, 0, 5], [0, 5, 0]]]), -1)
    >>> CTCTextDecoder(Chars(), blank_index=2)(log_probs, torch.tensor([3]))
    ['ab']
    """

    def __init__(self, tokenizer, blank_index, beam_size=0, rescorer=None):
        self.tokenizer = tokenizer
        self.blank_index = blank_index
        self.beam_size = int(beam_size or 0)
        if self.beam_size < 0:
            raise ValueError(f"beam_size must be >= 0 (0 = greedy), got {beam_size}")
        if rescorer is not None and not self.beam_size:
            raise ValueError("N-best rescoring (LM, lexicon) needs a beam (beam_size > 0), not greedy CTC")
        self.rescorer = rescorer
        self.searcher = None
        if rescorer is not None:
            self.searcher = nbest_searcher(self.vocab_list(), blank_index, topk=self.beam_size)
        elif self.beam_size:
            self.searcher = CTCPrefixBeamSearcher(
                blank_index=blank_index, vocab_list=self.vocab_list(), beam_size=self.beam_size
            )

    def vocab_list(self):
        """The CTC vocabulary (token strings, blank inserted)."""
        return ctc_vocab_list(self.tokenizer, self.blank_index)

    def __call__(self, log_probs, lengths):
        log_probs = log_probs.float().cpu()
        lengths = lengths.cpu()
        if self.searcher is None:
            rel_lens = lengths.float() / log_probs.shape[1]
            words = greedy_transcripts(log_probs, rel_lens, self.blank_index, self.tokenizer)
        else:  # one trimmed utterance at a time: no relative-length rounding
            words = [self.beam_words(log_probs[i : i + 1, :n]) for i, n in enumerate(lengths.tolist())]
        return [" ".join(w) for w in words]

    def beam_words(self, log_probs):
        """Words of one utterance's best (rescored, if any) beam hypothesis."""
        if self.rescorer is not None:
            return rescored_beam_transcripts(self.searcher, log_probs, None, self.rescorer)[0]
        return beam_transcripts(self.searcher, log_probs, None)[0]

    def __repr__(self):
        if self.searcher is None:
            return "greedy CTC"
        extra = "" if self.rescorer is None else describe_rescorer(self.rescorer)
        return f"CTC prefix beam search (beam {self.beam_size}{extra})"


class AttentionTextDecoder:
    """Exit states -> text with that exit's own attention decoder: SpeechBrain's
    ``S2STransformerBeamSearcher`` with the exit's CTC head as ``CTCScorer``
    (joint CTC/attention decoding) and an optional LM (shallow fusion).

    Called like :class:`CTCTextDecoder` plus the exit's normalised encoder
    states (``exit_output``) and its index: the dynamic inference and the
    sweep pass them because ``needs_exit_output`` is true. Only the decoder of
    the exit an utterance leaves at runs for it.

    Arguments
    ---------
    model : EarlyExitAED
        The model (its ``searcher_modules`` and ``ctc_linear``).
    tokenizer : sentencepiece.SentencePieceProcessor
        The model's tokenizer (BOS/EOS are control pieces).
    searcher_factory : callable
        Partial of ``S2STransformerBeamSearcher`` (``bos_index``,
        ``eos_index``, ``beam_size``, decode ratios...).
    blank_index, eos_index : int
        CTC blank and end of sentence.
    ctc_weight : float
        Weight of the CTC prefix score in the joint search.
    lm_scorer : speechbrain.decoders.scorer.TransformerLMScorer, optional
        Language model for shallow fusion, with ``lm_weight``.
    lm_weight : float
        Its weight.
    rescorer : speechbrain.decoders.scorer.RescorerBuilder, optional
        Rescores the search's N-best list (its ``beam_size`` best), e.g. the
        lexicon penalty of :func:`speechbrain_ee.decoding.nbest_rescorer`
        (the LM is fused in the search already).

    Example
    -------
    >>> from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder
    >>> class Tok:  # a stand-in for a SentencePiece processor with BOS 1 / EOS 2
    ...     def get_piece_size(self): return 7
    ...     def decode_ids(self, ids): return " ".join("xyzabcd"[i] for i in ids)
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4,)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=2, exit_layers=[1, 2])
    >>> model = EarlyExitAED(enc, ExitHeads(16, 8, 2), [ExitDecoder(8, 16, 2, 32, 1) for _ in range(2)],
    ...                      ExitHeads(16, 8, 2)).eval()
    >>> factory = partial(S2STransformerBeamSearcher, bos_index=1, eos_index=2, beam_size=3,
    ...     min_decode_ratio=0.0, max_decode_ratio=1.0, using_eos_threshold=False)
    >>> decoder = AttentionTextDecoder(model, Tok(), factory, blank_index=7, eos_index=2)
    >>> state, log_probs = model.step(model.start(torch.rand(2, 24, 20), torch.tensor([24, 16])), 0)
    >>> texts = decoder(log_probs, state.lengths, model.exit_output(state, 0), 0)
    >>> len(texts), all(isinstance(t, str) for t in texts)
    (2, True)
    """

    needs_exit_output = True

    def __init__(self, model, tokenizer, searcher_factory, blank_index, eos_index,
                 ctc_weight=0.4, lm_scorer=None, lm_weight=0.0, rescorer=None):
        self.model = model
        self.tokenizer = tokenizer
        self.searcher_factory = searcher_factory
        self.blank_index = blank_index
        self.eos_index = eos_index
        self.ctc_weight = float(ctc_weight)
        self.lm_scorer = lm_scorer
        self.lm_weight = float(lm_weight)
        self.rescorer = rescorer
        self._searchers = {}

    def searcher(self, exit_index, topk=None):
        """The (cached) beam searcher of an exit; with ``topk``, one that
        returns the ``topk`` best hypotheses and their scores."""
        key = (exit_index, topk)
        if key not in self._searchers:
            factory = self.searcher_factory
            if topk is not None:
                beam = max(topk, self.beam_size or topk)
                factory = partial(factory, return_topk=True, topk=topk, beam_size=beam)
            self._searchers[key] = exit_beam_searcher(
                factory, self.model, exit_index, self.blank_index, self.eos_index,
                ctc_weight=self.ctc_weight, lm_scorer=self.lm_scorer, lm_weight=self.lm_weight,
            )
        return self._searchers[key]

    @staticmethod
    def utterances(exit_output, lengths):
        """Each utterance's states alone, trimmed to its length: SpeechBrain's
        searcher bounds the decoding steps by the padded length, so a batch
        would let a short utterance decode longer than it would alone."""
        one = torch.ones(1, device=exit_output.device)
        for row, length in enumerate(lengths.tolist()):
            yield exit_output[row : row + 1, : int(length)], one

    @property
    def beam_size(self):
        """The beam of ``searcher_factory`` (None when it does not set one)."""
        return getattr(self.searcher_factory, "keywords", {}).get("beam_size")

    def __call__(self, log_probs, lengths, exit_output, exit_index):
        if self.rescorer is not None:
            return self.rescored(exit_output, lengths, exit_index)
        searcher = self.searcher(exit_index)
        return [
            " ".join(beam_search_transcripts(searcher, states, rel_len, self.tokenizer)[0])
            for states, rel_len in self.utterances(exit_output, lengths)
        ]

    def rescored(self, exit_output, lengths, exit_index):
        """Best hypothesis of each utterance after ``rescorer`` re-ranks the
        search's ``beam_size`` best (searcher scores + weighted rescorer scores)."""
        searcher = self.searcher(exit_index, topk=self.beam_size or 1)
        texts = []
        for states, rel_len in self.utterances(exit_output, lengths):
            nbest = nbest_transcripts(searcher, states, rel_len, self.tokenizer)[0]
            texts.append(best_rescored(self.rescorer, [" ".join(w) for w, _ in nbest], [s for _, s in nbest]))
        return texts

    def nbest_scores(self, exit_output, lengths, exit_index, topk):
        """Scores of the ``topk`` best hypotheses of each utterance at an exit
        (what the paper's Eq. 6 confidence is computed from)."""
        searcher = self.searcher(exit_index, topk)
        return [
            [score for _, score in nbest_transcripts(searcher, states, rel_len, self.tokenizer)[0]]
            for states, rel_len in self.utterances(exit_output, lengths)
        ]

    def __repr__(self):
        lm = f" + LM x{self.lm_weight:g}" if self.lm_scorer is not None and self.lm_weight > 0 else ""
        extra = "" if self.rescorer is None else describe_rescorer(self.rescorer)
        return f"joint CTC/attention beam search (beam {self.beam_size}, CTC x{self.ctc_weight:g}{lm}{extra})"


class AttentionRescoringDecoder:
    """Exit states -> text by attention rescoring (WeNet's
    ``attention_rescoring``): SpeechBrain's ``CTCPrefixBeamSearcher`` gives
    the exit's CTC N-best list (``beam_size`` hypotheses), the exit's own
    attention decoder scores each one teacher-forced in one batched pass, and
    the best of ``ctc_weight`` x CTC + (1 - ``ctc_weight``) x attention
    log-probability wins (then an optional ``rescorer``: transcript LM and/or
    lexicon penalty, as for CTC models).

    Far cheaper than the joint search (one decoder pass per utterance instead
    of one per output token and beam entry), so N-best lists of the size of
    the paper's Eq. 6 (K up to 300) become affordable: :meth:`nbest_scores`
    gives the combined scores of the ``topk`` best. Called like
    :class:`AttentionTextDecoder`.

    Arguments
    ---------
    model : EarlyExitAED
        The model (CTC heads, decoders, CE heads).
    tokenizer : sentencepiece.SentencePieceProcessor
        The model's tokenizer.
    blank_index, bos_index, eos_index : int
        CTC blank, decoder start and end of sentence.
    beam_size : int
        Prefix beam and N-best size.
    ctc_weight : float
        Weight of the CTC score (the attention score gets ``1 - ctc_weight``).
    rescorer : speechbrain.decoders.scorer.RescorerBuilder, optional
        :func:`speechbrain_ee.decoding.nbest_rescorer` applied to the combined scores.

    Example
    -------
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, ExitHeads, MaskedConvFrontEnd
    >>> from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder
    >>> class Tok:  # a stand-in for a SentencePiece processor with BOS 1 / EOS 2
    ...     def get_piece_size(self): return 7
    ...     def id_to_piece(self, i): return "xyz▁abc"[i]
    ...     def encode_as_ids(self, text): return ["xyz▁abc".index(c) for c in text.replace(" ", "▁")]
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4,)), d_model=16,
    ...     nhead=2, d_ffn=32, num_layers=2, exit_layers=[1, 2])
    >>> model = EarlyExitAED(enc, ExitHeads(16, 8, 2), [ExitDecoder(8, 16, 2, 32, 1) for _ in range(2)],
    ...                      ExitHeads(16, 8, 2)).eval()
    >>> decoder = AttentionRescoringDecoder(model, Tok(), blank_index=7, bos_index=1, eos_index=2, beam_size=4)
    >>> state, log_probs = model.step(model.start(torch.rand(2, 24, 20), torch.tensor([24, 16])), 0)
    >>> texts = decoder(log_probs, state.lengths, model.exit_output(state, 0), 0)
    >>> len(texts), all(isinstance(t, str) for t in texts)
    (2, True)
    """

    needs_exit_output = True

    def __init__(self, model, tokenizer, blank_index, bos_index, eos_index, beam_size=10,
                 ctc_weight=0.3, rescorer=None):
        self.model = model
        self.tokenizer = tokenizer
        self.blank_index = blank_index
        self.bos_index = bos_index
        self.eos_index = eos_index
        self.beam_size = int(beam_size)
        if self.beam_size < 1:
            raise ValueError(f"attention rescoring needs beam_size >= 1, got {beam_size}")
        self.ctc_weight = float(check_number("ctc_weight", ctc_weight, minimum=0, maximum=1))
        self.rescorer = rescorer
        self._searchers = {}

    def searcher(self, topk):
        """The (cached) CTC prefix searcher returning the ``topk`` best."""
        if topk not in self._searchers:
            vocab = ctc_vocab_list(self.tokenizer, self.blank_index)
            self._searchers[topk] = nbest_searcher(vocab, self.blank_index, topk=topk)
        return self._searchers[topk]

    def utterance_nbest(self, log_probs, exit_output, exit_index, topk):
        """``(texts, combined scores)`` of one utterance's ``topk`` best
        (``log_probs`` (1, T, C) and ``exit_output`` (1, T, D) trimmed to its
        length), best first."""
        hyps = self.searcher(topk)(log_probs.detach().float().cpu())[0]
        texts = [h.text for h in hyps]
        if not texts:
            return [""], [0.0]
        token_lists = [self.tokenizer.encode_as_ids(text) for text in texts]
        attention = attention_scores(self.model, exit_index, exit_output, token_lists,
                                     self.bos_index, self.eos_index)
        scores = [self.ctc_weight * h.lm_score + (1.0 - self.ctc_weight) * att
                  for h, att in zip(hyps, attention)]
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        return [texts[i] for i in order], [scores[i] for i in order]

    def nbests(self, log_probs, lengths, exit_output, exit_index, topk):
        """:meth:`utterance_nbest` of every utterance of a batch, each trimmed to its length."""
        return [
            self.utterance_nbest(log_probs[row : row + 1, :n], exit_output[row : row + 1, :n], exit_index, topk)
            for row, n in enumerate(int(n) for n in lengths.tolist())
        ]

    def __call__(self, log_probs, lengths, exit_output, exit_index):
        texts = [
            nbest[0] if self.rescorer is None else best_rescored(self.rescorer, nbest, scores)
            for nbest, scores in self.nbests(log_probs, lengths, exit_output, exit_index, self.beam_size)
        ]
        return [" ".join(text.split()) for text in texts]

    def nbest_scores(self, exit_output, lengths, exit_index, topk):
        """Combined scores of the ``topk`` best hypotheses of each utterance
        (the paper's Eq. 6 confidence is computed from them); the CTC
        posteriors come from the exit's CTC head."""
        with torch.no_grad():
            log_probs = self.model.ctc_heads(exit_index, exit_output)
        return [scores for _, scores in self.nbests(log_probs, lengths, exit_output, exit_index, topk)]

    def __repr__(self):
        extra = "" if self.rescorer is None else describe_rescorer(self.rescorer)
        return (f"attention rescoring of the CTC prefix beam (beam {self.beam_size}, "
                f"CTC x{self.ctc_weight:g}{extra})")


AED_DECODINGS = ("joint", "rescoring")


def attention_decoder(model, hparams, searcher_factory, ctc_weight, device="cpu", beam_size=None,
                      aed_decoding=None):
    """The text decoder of an :class:`~speechbrain_ee.nnet.aed_model.EarlyExitAED`
    that ``aed_decoding`` (default: ``hparams.aed_decoding``, else
    ``"joint"``) names:

    * ``"joint"``: :class:`AttentionTextDecoder`, the joint CTC/attention
      search of ``searcher_factory`` (its beam, or ``beam_size``) with the
      LM fused (``lm_scorer``, ``lm_weight``) and the lexicon re-ranking;
    * ``"rescoring"``: :class:`AttentionRescoringDecoder` over a CTC prefix
      beam of ``beam_size`` (default the factory's beam), the LM and the
      lexicon re-ranking the rescored N-best.

    ``hparams`` is a recipe's or an exported model's hparams object
    (``tokenizer``, ``blank_index``, ``bos_index``, ``eos_index``, optional LM
    and lexicon keys).
    """
    decoding = aed_decoding or getattr(hparams, "aed_decoding", None) or "joint"
    if decoding not in AED_DECODINGS:
        raise ValueError(f"aed_decoding must be one of {AED_DECODINGS}, got {decoding!r}")
    factory_beam = getattr(searcher_factory, "keywords", {}).get("beam_size")
    if decoding == "rescoring":
        return AttentionRescoringDecoder(
            model, hparams.tokenizer, hparams.blank_index, hparams.bos_index, hparams.eos_index,
            beam_size=beam_size or factory_beam or 10, ctc_weight=ctc_weight,
            rescorer=hparams_nbest_rescorer(hparams, device),
        )
    if beam_size:
        searcher_factory = partial(searcher_factory, beam_size=int(beam_size))
    return AttentionTextDecoder(
        model, hparams.tokenizer, searcher_factory, hparams.blank_index, hparams.eos_index,
        ctc_weight=ctc_weight, lm_scorer=getattr(hparams, "lm_scorer", None),
        lm_weight=getattr(hparams, "lm_weight", 0.0),
        rescorer=hparams_nbest_rescorer(hparams, device, with_lm=False),
    )


def required_hparam(hparams, key, what):
    """``hparams.key``, or a ``ValueError`` naming the missing key (decoding
    settings have no silent defaults)."""
    value = getattr(hparams, key, None)
    if value is None:
        raise ValueError(f"the hyperparameters have no {key!r} ({what})")
    return value


def build_text_decoder(model, hparams, device="cpu", beam_size=None, aed_decoding=None):
    """The one text decoder of a model: what the Brains' test stage,
    :class:`~speechbrain_ee.inference.EarlyExitASR` (and so ``sbee evaluate``)
    and the selection sweeps decode with.

    The settings come from ``hparams`` (a recipe's hparams, or an exported
    model's, which carries the same keys with the same meaning):

    * CTC models: ``test_beam_size`` (0: greedy CTC, else
      ``CTCPrefixBeamSearcher``), its N-best list rescored by the transcript
      LM (``lm_model``, ``lm_weight``) and the lexicon penalty
      (``lexicon_file``, ``oov_penalty``) when they are set:
      :class:`CTCTextDecoder`;
    * attention models (``EarlyExitAED``): ``test_search`` (a partial of
      ``S2STransformerBeamSearcher``), ``ctc_weight_decode`` and
      ``aed_decoding``, see :func:`attention_decoder`.

    Arguments
    ---------
    model : EarlyExitCTC or EarlyExitAED
        The (unwrapped) model.
    hparams : object
        Attribute access to the keys above, ``tokenizer`` and ``blank_index``.
    device : str
        Where an LM runs.
    beam_size : int, optional
        Overrides ``test_beam_size`` (CTC; 0: greedy) or the search's beam
        (attention models).
    aed_decoding : str, optional
        Overrides ``aed_decoding`` (attention models).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
    >>> enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4,)), d_model=16, nhead=2, d_ffn=32,
    ...                                 num_layers=2, exit_layers=[1, 2])
    >>> model = EarlyExitCTC(enc, ExitHeads(16, 11, 2))
    >>> class Chars:
    ...     def get_piece_size(self): return 10
    ...     def id_to_piece(self, i): return "abcdefghij"[i]
    >>> hparams = SimpleNamespace(tokenizer=Chars(), blank_index=10, test_beam_size=4)
    >>> build_text_decoder(model, hparams)
    CTC prefix beam search (beam 4)
    >>> build_text_decoder(model, SimpleNamespace(tokenizer=Chars(), blank_index=10))
    Traceback (most recent call last):
    ...
    ValueError: the hyperparameters have no 'test_beam_size' (the CTC decoding's beam; 0: greedy)
    """
    if hasattr(model, "searcher_modules"):
        search = required_hparam(hparams, "test_search", "a partial of S2STransformerBeamSearcher")
        ctc_weight = required_hparam(hparams, "ctc_weight_decode", "the CTC weight of the joint search")
        check_number("ctc_weight_decode", ctc_weight, minimum=0, maximum=1)
        return attention_decoder(model, hparams, search, float(ctc_weight), device, beam_size, aed_decoding)
    if aed_decoding is not None:
        raise ValueError("aed_decoding applies to attention models (EarlyExitAED) only")
    if beam_size is None:
        beam_size = required_hparam(hparams, "test_beam_size", "the CTC decoding's beam; 0: greedy")
    rescorer = hparams_nbest_rescorer(hparams, device) if beam_size else None
    return CTCTextDecoder(hparams.tokenizer, hparams.blank_index, beam_size, rescorer=rescorer)
