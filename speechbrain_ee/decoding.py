"""Turning exit posteriors into words (greedy CTC and SpeechBrain's prefix beam search)."""

import csv
import os

import speechbrain as sb
import torch
from speechbrain.decoders.scorer import BaseRescorerInterface, RescorerBuilder, TransformerLMRescorer


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


class LexiconRescorer(BaseRescorerInterface):
    """N-best rescorer that counts the words of each hypothesis outside a
    vocabulary (the ``unigrams`` + ``unk_score_offset`` of pyctcdecode and of
    SpeechBrain's KenLM-fused CTC searchers, without an n-gram LM): its score
    is minus that count, so the rescorer's weight is the penalty per unknown
    word. A character model spells words it has never seen; on a closed
    vocabulary (AN4's ~130 words) the penalty sends them down the list.

    Arguments
    ---------
    words : iterable of str
        The known words (e.g. those of the training transcripts).

    Example
    -------
    >>> lexicon = LexiconRescorer(["ENTER", "FOUR", "FIVE"])
    >>> lexicon.rescore_hyps([["ENTER FOUR", "ENTER FOURH"], ["FIVE FIVE"]]).tolist()
    [0.0, -1.0, 0.0]
    """

    def __init__(self, words):
        self.words = frozenset(words)
        if not self.words:
            raise ValueError("LexiconRescorer needs at least one word")

    def rescore_hyps(self, topk_hyps):
        """Minus the unknown-word count of every hypothesis, flattened."""
        return torch.tensor([
            -float(sum(word not in self.words for word in hyp.split())) or 0.0
            for hyps in topk_hyps for hyp in hyps
        ])

    def to_device(self, device=None):
        """Nothing to move."""


class NBestRescorer(RescorerBuilder):
    """SpeechBrain's ``RescorerBuilder`` that also accepts rescorers of this
    package (SpeechBrain only validates the names of its own)."""

    def _validate_scorer(self, rescorer_names):
        super()._validate_scorer(list(rescorer_names) + [k for k in self.rescorers if k not in rescorer_names])


def transcript_words(csv_files, column="wrd"):
    """The set of words of the ``column`` of SpeechBrain CSV manifests
    (e.g. the training transcripts), for :class:`LexiconRescorer`."""
    if isinstance(csv_files, str):
        csv_files = [csv_files]
    words = set()
    for path in csv_files:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if column not in (reader.fieldnames or []):
                raise ValueError(f"{path}: no column {column!r} (columns: {reader.fieldnames})")
            for row in reader:
                words.update(row[column].split())
    return words


def write_lexicon(csv_files, path, column="wrd"):
    """Writes the words of the manifests' ``column`` (:func:`transcript_words`),
    one per line and sorted, to ``path`` (a temporary file renamed into place:
    an interrupted write leaves no partial lexicon)."""
    words = sorted(transcript_words(csv_files, column))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write("".join(f"{w}\n" for w in words))
    os.replace(tmp, path)
    return path


def load_lexicon(path):
    """The words of a lexicon file (one per line), as a set."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"lexicon file not found: {path!r} (oov_penalty > 0 needs one)")
    with open(path) as handle:
        words = {line.strip() for line in handle if line.strip()}
    if not words:
        raise ValueError(f"lexicon file {path} has no words")
    return words


def nbest_rescorer(language_model=None, tokenizer=None, lm_weight=0.0, bos_index=None, eos_index=None,
                   lexicon=None, oov_penalty=0.0, device="cpu"):
    """SpeechBrain's N-best rescorer (``RescorerBuilder``) adding to each
    hypothesis' decoder score ``lm_weight`` x its ``TransformerLMRescorer``
    log-probability (``bos``, its tokens, ``eos``) and/or ``oov_penalty`` x
    minus its count of words outside ``lexicon`` (:class:`LexiconRescorer`).

    Arguments
    ---------
    language_model : speechbrain.lobes.models.transformer.TransformerLM.TransformerLM, optional
        An LM over the tokenizer's pieces (e.g. the recipe's transcript LM).
    tokenizer : sentencepiece.SentencePieceProcessor
        The ASR model's tokenizer (the LM's vocabulary).
    lm_weight : float
        LM weight (> 0 with an LM).
    bos_index, eos_index : int
        The LM's sentence start and end (a CTC model's tokenizer has no
        BOS/EOS pieces: its LM uses the blank as EOS and one class beyond it as BOS).
    lexicon : iterable of str, optional
        Known words (:func:`load_lexicon`).
    oov_penalty : float
        Score taken off per word outside ``lexicon`` (> 0 with a lexicon).
    device : str
        Where the LM runs.
    """
    weights, rescorers = {}, []
    if language_model is not None:
        lm_weight = float(lm_weight)
        if not lm_weight > 0:
            raise ValueError(f"lm_weight must be > 0 to rescore with the LM, got {lm_weight!r}")
        weights["transformerlm"] = lm_weight
        rescorers.append(TransformerLMRescorer(
            language_model=language_model, tokenizer=tokenizer, device=device,
            bos_index=bos_index, eos_index=eos_index, pad_index=0,
        ))
    if lexicon is not None:
        oov_penalty = float(oov_penalty)
        if not oov_penalty > 0:
            raise ValueError(f"oov_penalty must be > 0 to rescore with a lexicon, got {oov_penalty!r}")
        weights["lexicon"] = oov_penalty
        rescorers.append(LexiconRescorer(lexicon))
    if not rescorers:
        raise ValueError("nothing to rescore with: give a language model and/or a lexicon")
    return NBestRescorer(weights=weights, rescorers=rescorers)


def hparams_nbest_rescorer(hparams, device="cpu", with_lm=True):
    """:func:`nbest_rescorer` of a recipe's or an exported model's hparams
    (an object with attributes: ``lm_model``, ``lm_weight``, ``tokenizer``,
    ``lm_bos_index``, ``lm_eos_index`` (default ``bos_index``,
    ``eos_index``); ``lexicon_file`` and
    ``oov_penalty``): the LM when ``lm_weight`` > 0 (and ``with_lm``: an
    attention model fuses its LM in the search instead), the lexicon when
    ``oov_penalty`` > 0; None when neither. The LM is moved to ``device``."""
    lm = getattr(hparams, "lm_model", None) if with_lm else None
    lm_weight = getattr(hparams, "lm_weight", 0.0) or 0.0
    oov_penalty = getattr(hparams, "oov_penalty", 0.0) or 0.0
    use_lm = lm is not None and lm_weight > 0
    if not use_lm and not oov_penalty > 0:
        return None
    lm_args = {}
    if use_lm:
        # a CTC model's LM has its own BOS/EOS (lm_*_index); an AED's LM shares the model's
        bos = getattr(hparams, "lm_bos_index", None)
        eos = getattr(hparams, "lm_eos_index", None)
        lm_args = dict(language_model=lm.to(device).eval(), lm_weight=lm_weight,
                       bos_index=hparams.bos_index if bos is None else bos,
                       eos_index=hparams.eos_index if eos is None else eos)
    lexicon = load_lexicon(hparams.lexicon_file) if oov_penalty > 0 else None
    return nbest_rescorer(tokenizer=hparams.tokenizer, lexicon=lexicon, oov_penalty=oov_penalty,
                          device=device, **lm_args)


def describe_rescorer(rescorer):
    """What an :class:`NBestRescorer` adds, for logs (``" + LM rescoring x0.3"``).

    Example
    -------
    >>> describe_rescorer(nbest_rescorer(lexicon=["A"], oov_penalty=2))
    ' + unknown words -2'
    """
    text = ""
    if "transformerlm" in rescorer.rescorers:
        text += f" + LM rescoring x{rescorer.weights['transformerlm']:g}"
    if "lexicon" in rescorer.rescorers:
        text += f" + unknown words -{rescorer.weights['lexicon']:g}"
    return text


def best_rescored(rescorer, texts, scores):
    """The best of one utterance's N-best ``texts`` (with the decoder's
    ``scores``) once ``rescorer`` (:func:`nbest_rescorer`) has added its scores.

    Example
    -------
    >>> best_rescored(nbest_rescorer(lexicon=["B"], oov_penalty=1.0), ["A", "B"], [0.0, -0.5])
    'B'
    """
    ranked, _ = rescorer.rescore([list(texts)], [list(scores)])
    return ranked[0][0]


def rescored_beam_transcripts(searcher, log_probs, rel_lens, rescorer):
    """Best transcript (list of words) of each utterance after rescoring the
    N-best list of a CTC beam searcher (built with ``topk`` > 1 and
    ``prune_history=False``, e.g. :func:`speechbrain_ee.selection.measures.nbest_searcher`)
    with ``rescorer`` (:func:`nbest_rescorer`)."""
    transcripts = []
    for hyps in searcher(log_probs, rel_lens):
        if not hyps:
            transcripts.append([])
            continue
        transcripts.append(best_rescored(rescorer, [h.text for h in hyps], [h.lm_score for h in hyps]).split())
    return transcripts
