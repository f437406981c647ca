"""Exit selectors: when should an utterance leave the encoder?

Every selector follows one protocol, used both online by
:func:`speechbrain_ee.inference.run_dynamic` and offline by
:mod:`speechbrain_ee.selection.sweep`:

1. ``first = selector.start(exit_layers)`` before a batch: checks that the
   selector fits the model, forgets the previous batch, and returns the
   first exit worth computing (a fixed exit or a layer budget skip the
   exit heads below it);
2. at each exit ``e`` before the last:
   ``m = selector.measure(log_probs, lengths, transcripts)`` computes the
   threshold-independent quantity the rule reads (entropy, N-best confidence,
   transcripts; the sweep caches it under ``selector.measure_key``), then
   ``stop = selector.decide(e, m, index)`` says which of the remaining
   utterances stop. ``index`` is the position of each remaining utterance in
   the original batch: selectors with a per-utterance history (patience,
   agreement) key it on ``index``, so they follow batch compaction.

The last exit always stops everyone; selectors are not asked there.
Selectors are plain classes, so hyperpyyaml can build them
(``!new:speechbrain_ee.selection.EntropySelector {threshold: 0.01}``).
"""

import numpy
import torch

from speechbrain_ee.checks import check_integer, check_number
from speechbrain_ee.selection.measures import (
    check_topk,
    mean_frame_entropy,
    nbest_confidence,
    nbest_posterior,
    nbest_searcher,
    transcript_distance,
)


def check_threshold(name, value, minimum=0.0, maximum=None):
    """A selector's threshold as a float: a number within the bounds, ``inf``
    allowed (a threshold that always fires or never does)."""
    return float(check_number(name, value, minimum, maximum, allow_infinite=True))


def check_exit_index(exit_index, exit_layers):
    """Clear error when ``exit_index`` is not a (0-based) exit of a model
    with exits after ``exit_layers``."""
    if isinstance(exit_index, bool) or not isinstance(exit_index, (int, numpy.integer)) \
            or not 0 <= exit_index < len(exit_layers):
        raise ValueError(
            f"exit index {exit_index!r} is not an exit: valid indices are "
            f"0..{len(exit_layers) - 1} (after layers {list(exit_layers)})"
        )
    return int(exit_index)


class ExitSelector:
    """Base class: see the module docstring for the protocol."""

    #: name of the measure the rule reads (``"entropy"``, ``"confidence"``,
    #: ``"transcript"``) or None when it reads nothing
    measure_key = None
    #: True when :meth:`measure` needs the transcripts of the exit
    needs_transcripts = False
    #: True when :meth:`measure` needs the exit's encoder states
    #: (``exit_output``, ``exit_index`` keyword arguments)
    needs_exit_output = False
    #: name of the constructor argument a sweep varies
    parameter = "threshold"

    def start(self, exit_layers):
        """Prepares a new batch; returns the first exit to compute."""
        return 0

    def measure(self, log_probs, lengths, transcripts=None, **exit_context):
        """Threshold-independent per-utterance quantity (None by default)."""
        return None

    def decide(self, exit_index, measures, index):
        """Boolean tensor: which of the remaining utterances stop at ``exit_index``."""
        raise NotImplementedError

    def config(self):
        """Constructor arguments (to store a calibrated selector)."""
        if not hasattr(self, self.parameter):
            return {}
        return {self.parameter: getattr(self, self.parameter)}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _all(index, value=True):
    return torch.full((len(index),), value, dtype=torch.bool)


class FixedExitSelector(ExitSelector):
    """Every utterance stops at exit ``exit_index`` (0-based).

    Example
    -------
    >>> sel = FixedExitSelector(1)
    >>> sel.start([2, 4, 6])
    1
    >>> sel.decide(1, None, torch.tensor([0, 1])).tolist()
    [True, True]
    """

    parameter = "exit_index"

    def __init__(self, exit_index):
        self.exit_index = check_integer("exit index", exit_index, minimum=0)

    def start(self, exit_layers):
        return check_exit_index(self.exit_index, exit_layers)

    def decide(self, exit_index, measures, index):
        return _all(index, exit_index >= self.exit_index)


class LayerBudgetSelector(ExitSelector):
    """Resource-aware mode: this device can afford ``max_layers`` encoder
    layers, so every utterance stops at the deepest exit within the budget.

    Example
    -------
    >>> LayerBudgetSelector(7).start([2, 4, 6, 8])
    2
    >>> LayerBudgetSelector(1).start([2, 4])
    Traceback (most recent call last):
    ...
    ValueError: a budget of 1 layers is below the first exit (after layer 2)
    """

    parameter = "max_layers"

    def __init__(self, max_layers):
        self.max_layers = check_integer("max_layers (layer budget)", max_layers, minimum=1)
        self._exit = None

    def start(self, exit_layers):
        affordable = [i for i, layer in enumerate(exit_layers) if layer <= self.max_layers]
        if not affordable:
            raise ValueError(
                f"a budget of {self.max_layers} layers is below the first exit "
                f"(after layer {exit_layers[0]})"
            )
        self._exit = affordable[-1]
        return self._exit

    def decide(self, exit_index, measures, index):
        return _all(index, exit_index >= self._exit)


class EntropySelector(ExitSelector):
    """Stops at the first exit whose posterior entropy (Eq. 5,
    :func:`mean_frame_entropy`) is below ``threshold``.

    Example
    -------
    >>> sel = EntropySelector(0.05)
    >>> sel.decide(0, torch.tensor([0.01, 0.2]), torch.tensor([0, 1])).tolist()
    [True, False]
    """

    measure_key = "entropy"

    def __init__(self, threshold):
        self.threshold = check_threshold("entropy threshold", threshold)

    def measure(self, log_probs, lengths, transcripts=None):
        return mean_frame_entropy(log_probs, lengths)

    def decide(self, exit_index, measures, index):
        return torch.as_tensor(measures) < self.threshold


class ConfidenceSelector(ExitSelector):
    """Stops at the first exit whose N-best confidence (Eq. 6,
    :func:`nbest_confidence`: softmax over the scores of the ``topk`` best
    hypotheses of a CTC prefix beam search) is above ``threshold``.

    Arguments
    ---------
    threshold : float
        In ``[0, 1]``.
    topk : int
        ``K``, the N-best list size (the paper goes up to 300; beam search
        time grows quickly with it).
    beam_size : int, optional
        Beam of the search (at least ``topk``; default ``topk``).
    vocab_list, blank_index : optional
        The CTC vocabulary (see :func:`speechbrain_ee.decoding.ctc_vocab_list`);
        :class:`~speechbrain_ee.inference.EarlyExitASR` and the sweep supply
        them through :meth:`bind_vocabulary`.
    searcher : speechbrain.decoders.ctc.CTCBaseSearcher, optional
        A ready N-best searcher (its ``topk`` is ``K``) instead of the above.
        An attention model binds its own N-best instead (:meth:`bind_nbest`:
        the joint CTC/attention beam search of the exit's decoder).
    **search_options
        Further ``CTCPrefixBeamSearcher`` arguments (``beam_prune_logp``...).

    Example
    -------
    >>> sel = ConfidenceSelector(0.9, topk=4, vocab_list=["▁a", "▁b", "<blank>"], blank_index=2)
    >>> sure = torch.log_softmax(torch.tensor([[[9.0, 0, 0], [0, 0, 9]]]), -1)
    >>> unsure = torch.log_softmax(torch.zeros(1, 2, 3), -1)
    >>> m = sel.measure(torch.cat([sure, unsure]), torch.tensor([2, 2]))
    >>> sel.decide(0, m, torch.tensor([0, 1])).tolist()
    [True, False]
    """

    measure_key = "confidence"

    def __init__(self, threshold, topk=10, beam_size=None, vocab_list=None, blank_index=None,
                 searcher=None, **search_options):
        self.threshold = check_threshold("confidence threshold", threshold, maximum=1.0)
        self.topk = check_topk(searcher.topk if searcher is not None else topk)
        self.beam_size = beam_size
        self.search_options = search_options
        self.searcher = searcher
        self.nbest_fn = None
        if vocab_list is not None and searcher is None:
            self.bind_vocabulary(vocab_list, blank_index)

    @property
    def needs_exit_output(self):
        """True once bound to an attention decoder's N-best (:meth:`bind_nbest`)."""
        return self.nbest_fn is not None

    @property
    def is_bound(self):
        """Whether the selector can measure (has a CTC searcher or an N-best function)."""
        return self.searcher is not None or self.nbest_fn is not None

    def bind_nbest(self, nbest_fn):
        """Takes the N-best scores from ``nbest_fn(exit_output, lengths,
        exit_index, topk) -> [[score, ...] per utterance]`` (e.g.
        :meth:`~speechbrain_ee.inference.decoders.AttentionTextDecoder.nbest_scores`)
        instead of a CTC prefix beam search."""
        self.nbest_fn = nbest_fn

    def bind_vocabulary(self, vocab_list, blank_index):
        """Builds the N-best searcher for a CTC vocabulary (blank included)."""
        if blank_index is None:
            raise ValueError("ConfidenceSelector needs blank_index with vocab_list")
        self.searcher = nbest_searcher(
            vocab_list, blank_index, self.topk, self.beam_size, **self.search_options
        )

    def measure(self, log_probs, lengths, transcripts=None, exit_output=None, exit_index=None):
        if self.nbest_fn is not None:
            if exit_output is None:
                raise ValueError("ConfidenceSelector bound to an attention N-best needs exit_output")
            scores = self.nbest_fn(exit_output, lengths, exit_index, self.topk)
            return torch.tensor([nbest_posterior(s) for s in scores], dtype=torch.float64)
        if self.searcher is None:
            raise ValueError(
                "ConfidenceSelector has no vocabulary: call bind_vocabulary(vocab_list, "
                "blank_index) first (EarlyExitASR and the sweep do it)"
            )
        return nbest_confidence(log_probs, lengths, self.searcher)

    def decide(self, exit_index, measures, index):
        return torch.as_tensor(measures) > self.threshold

    def config(self):
        config = {"threshold": self.threshold, "topk": self.topk}
        if self.beam_size is not None:
            config["beam_size"] = self.beam_size
        return {**config, **self.search_options}


class _TranscriptHistorySelector(ExitSelector):
    """Selectors that compare an utterance's transcript with its earlier exits.
    The history is keyed on the original batch index, so it follows batch
    compaction; subclasses say, from the previous entry, whether to stop."""

    measure_key = "transcript"
    needs_transcripts = True

    def start(self, exit_layers):
        self._history = {}
        return 0

    def measure(self, log_probs, lengths, transcripts=None):
        return transcripts

    def decide(self, exit_index, measures, index):
        stop = []
        for utt, text in zip(index.tolist(), measures):
            entry, done = self._update(self._history.get(utt), text)
            self._history[utt] = entry
            stop.append(done)
        return torch.tensor(stop, dtype=torch.bool)

    def _update(self, previous, text):
        """``(new history entry, stop?)`` from the previous entry (None at first)."""
        raise NotImplementedError


class PatienceSelector(_TranscriptHistorySelector):
    """Berrebbi et al. (2022): stops when ``patience`` successive exits give
    the same transcript (``patience=1`` stops at the first exit).

    Example
    -------
    >>> sel = PatienceSelector(2)
    >>> sel.start([1, 2, 3])
    0
    >>> sel.decide(0, ["A", "B"], torch.tensor([0, 1])).tolist()
    [False, False]
    >>> sel.decide(1, ["A", "C"], torch.tensor([0, 1])).tolist()
    [True, False]
    """

    parameter = "patience"

    def __init__(self, patience):
        self.patience = check_integer("patience", patience, minimum=1)
        self._history = {}

    def _update(self, previous, text):
        last, run = previous or (None, 0)
        run = run + 1 if text == last else 1
        return (text, run), run >= self.patience


class AgreementSelector(_TranscriptHistorySelector):
    """Berrebbi et al. (2022): stops when the character error rate between
    the transcripts of two successive exits (the later one as reference) is at
    most ``threshold`` (0 means identical transcripts).

    Example
    -------
    >>> sel = AgreementSelector(0.25)
    >>> sel.start([1, 2, 3])
    0
    >>> sel.decide(0, ["ABCD", "ABCD"], torch.tensor([0, 1])).tolist()
    [False, False]
    >>> sel.decide(1, ["ABCE", "WXYZ"], torch.tensor([0, 1])).tolist()
    [True, False]
    """

    def __init__(self, threshold):
        self.threshold = check_threshold("agreement threshold (CER)", threshold)
        self._history = {}

    def _update(self, previous, text):
        return text, previous is not None and transcript_distance(text, previous) <= self.threshold


class GuardedAgreementSelector(_TranscriptHistorySelector):
    """A selector that does not exit early on input it does not know.

    Posterior entropy alone (:class:`EntropySelector`) is as low on
    telephone-band, noisy or distant speech as on clean speech while the
    shallow exits are far more often wrong there: calibrated on clean audio,
    it sends unfamiliar input out early and confidently wrong. This rule asks
    for evidence the input cannot fake as easily: after the first exit an
    utterance stops only when its transcript agrees with the previous exit's
    (character error rate at most ``agreement``, as :class:`AgreementSelector`)
    *and* the posterior entropy is below ``threshold``; at the first exit,
    where there is no previous transcript, only when the entropy is below the
    much stricter ``first_exit_threshold`` (0: never). Calibrate the three
    on a dev mix of clean and degraded audio
    (:func:`speechbrain_ee.selection.calibrate.calibrate_on_mix`).

    Arguments
    ---------
    threshold : float
        Entropy (:func:`mean_frame_entropy`) below which an agreeing exit stops.
    agreement : float
        Largest character error rate between successive exits' transcripts
        (the later one as reference) that counts as agreement.
    first_exit_threshold : float
        Entropy below which an utterance stops at the first exit.

    Example
    -------
    >>> sel = GuardedAgreementSelector(0.01, agreement=0.2, first_exit_threshold=0.001)
    >>> sel.start([2, 4, 6])
    0
    >>> entropy = torch.tensor([0.0005, 0.004, 0.004])
    >>> sel.decide(0, (entropy, ["A B", "C D", "E F"]), torch.tensor([0, 1, 2])).tolist()
    [True, False, False]
    >>> sel.decide(1, (torch.tensor([0.004, 0.02]), ["C D", "E F"]), torch.tensor([1, 2])).tolist()
    [True, False]
    """

    measure_key = ("entropy", "transcript")

    def __init__(self, threshold, agreement=0.0, first_exit_threshold=0.0):
        self.threshold = check_threshold("entropy threshold", threshold)
        self.agreement = check_threshold("agreement (CER between successive exits)", agreement)
        self.first_exit_threshold = check_threshold("first-exit entropy threshold", first_exit_threshold)
        self._history = {}

    def measure(self, log_probs, lengths, transcripts=None):
        return mean_frame_entropy(log_probs, lengths), transcripts

    def decide(self, exit_index, measures, index):
        entropy, transcripts = measures
        entropy = torch.as_tensor(entropy).tolist()
        stop = []
        for utt, value, text in zip(index.tolist(), entropy, transcripts):
            previous = self._history.get(utt)
            self._history[utt] = text
            if previous is None:
                stop.append(value < self.first_exit_threshold)
            else:
                stop.append(value < self.threshold and transcript_distance(text, previous) <= self.agreement)
        return torch.tensor(stop, dtype=torch.bool)

    def config(self):
        return {"threshold": self.threshold, "agreement": self.agreement,
                "first_exit_threshold": self.first_exit_threshold}


def oracle_exits(word_errors, exit_layers=None, penalty=0.0):
    """Oracle exit of each utterance (needs the references): the lowest exit
    that reaches the utterance's best error count. With ``penalty > 0`` each
    utterance minimises ``errors + penalty * layer`` instead; sweeping the
    penalty traces the lower convex hull of every achievable
    (mean exit, WER) point, a lower bound for any selector's curve.

    Arguments
    ---------
    word_errors : array-like
        Word errors of each utterance at each exit, ``(utterances, exits)``.
    exit_layers : list of int, optional
        Cost of each exit (default: the exit index).
    penalty : float
        Errors one layer is worth.

    Returns
    -------
    numpy.ndarray
        Exit index of each utterance.

    Example
    -------
    >>> errors = [[3, 1, 1], [0, 0, 0], [2, 2, 1]]
    >>> oracle_exits(errors).tolist()
    [1, 0, 2]
    >>> oracle_exits(errors, [2, 4, 6], penalty=0.6).tolist()
    [1, 0, 0]
    """
    errors = numpy.asarray(word_errors, dtype=float)
    cost = numpy.arange(errors.shape[1]) if exit_layers is None else numpy.asarray(exit_layers)
    penalty = check_threshold("oracle penalty", penalty)
    return numpy.argmin(errors + penalty * cost[None, :], axis=1)  # first minimum: lowest exit


SELECTORS = {
    "fixed": FixedExitSelector,
    "budget": LayerBudgetSelector,
    "entropy": EntropySelector,
    "confidence": ConfidenceSelector,
    "patience": PatienceSelector,
    "agreement": AgreementSelector,
    "guarded": GuardedAgreementSelector,
}


def make_selector(name, value, **options):
    """Selector ``name`` (a key of :data:`SELECTORS`) with its parameter set to
    ``value`` (threshold, exit index, layer budget or patience).

    Example
    -------
    >>> make_selector("patience", 3.0)
    PatienceSelector(patience=3)
    >>> make_selector("entropy", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: entropy threshold must be a number >= 0.0, got nan
    """
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}: choose one of {sorted(SELECTORS)}")
    if value is None:
        raise ValueError(f"selector {name!r} needs a value for its {SELECTORS[name].parameter}")
    cls = SELECTORS[name]
    return cls(**{cls.parameter: value}, **options)
