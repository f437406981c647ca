"""Exit selectors of :mod:`speechbrain_ee.selection.selectors` in numpy,
for one utterance at a time: fixed exit, layer budget, posterior entropy,
transcript agreement and patience. Each one tells, exit by exit, whether
the utterance stops, so that the runtime never computes a later segment.
"""

import numpy

from speechbrain_ee.runtime.decoding import edit_distance


def mean_frame_entropy(log_probs):
    """Eq. 5 of Wright et al. (2023) for one utterance ``(frames, classes)``:
    the mean frame entropy divided by the number of classes.

    Example
    -------
    >>> round(mean_frame_entropy(numpy.log(numpy.full((3, 4), 0.25))), 4)
    0.3466
    """
    log_probs = numpy.asarray(log_probs, dtype=numpy.float64)
    plogp = numpy.nan_to_num(numpy.exp(log_probs) * log_probs, nan=0.0)
    frames = max(1, log_probs.shape[0])
    return float(-plogp.sum() / (frames * log_probs.shape[-1]))


class Selector:
    """Base: ``first_exit(exit_layers)`` then ``stops(exit_index, log_probs,
    text)`` at each exit but the last (which always stops)."""

    #: True when :meth:`stops` reads the exit's transcript
    needs_text = False

    def first_exit(self, exit_layers):
        """First exit worth computing (and forgets the previous utterance)."""
        return 0

    def stops(self, exit_index, log_probs, text=None):
        """Whether the utterance stops at ``exit_index``."""
        raise NotImplementedError


class FixedExit(Selector):
    """Always exit ``exit_index`` (0-based).

    Example
    -------
    >>> FixedExit(2).first_exit([2, 4, 6, 8])
    2
    """

    def __init__(self, exit_index):
        self.exit_index = int(exit_index)

    def first_exit(self, exit_layers):
        if not 0 <= self.exit_index < len(exit_layers):
            raise ValueError(
                f"exit index {self.exit_index} is not an exit: valid indices are "
                f"0..{len(exit_layers) - 1} (after layers {list(exit_layers)})"
            )
        return self.exit_index

    def stops(self, exit_index, log_probs, text=None):
        return exit_index >= self.exit_index


class LayerBudget(FixedExit):
    """The deepest exit within ``max_layers`` encoder layers.

    Example
    -------
    >>> LayerBudget(7).first_exit([2, 4, 6, 8])
    2
    """

    def __init__(self, max_layers):
        self.max_layers = int(max_layers)
        self.exit_index = None

    def first_exit(self, exit_layers):
        affordable = [i for i, layer in enumerate(exit_layers) if layer <= self.max_layers]
        if not affordable:
            raise ValueError(
                f"a budget of {self.max_layers} layers is below the first exit (after layer {exit_layers[0]})"
            )
        self.exit_index = affordable[-1]
        return self.exit_index


class Entropy(Selector):
    """Stops at the first exit whose :func:`mean_frame_entropy` is below ``threshold``."""

    def __init__(self, threshold):
        self.threshold = float(threshold)

    def stops(self, exit_index, log_probs, text=None):
        return mean_frame_entropy(log_probs) < self.threshold


class Agreement(Selector):
    """Stops when the character error rate between the transcripts of two
    successive exits (the later one as reference) is at most ``threshold``."""

    needs_text = True

    def __init__(self, threshold):
        self.threshold = float(threshold)
        self._previous = None

    def first_exit(self, exit_layers):
        self._previous = None
        return 0

    def stops(self, exit_index, log_probs, text=None):
        previous, self._previous = self._previous, text
        return previous is not None and edit_distance(text, previous) / max(1, len(text)) <= self.threshold


class Patience(Selector):
    """Stops when ``patience`` successive exits give the same transcript."""

    needs_text = True

    def __init__(self, patience):
        self.patience = int(patience)
        self._last, self._run = None, 0

    def first_exit(self, exit_layers):
        self._last, self._run = None, 0
        return 0

    def stops(self, exit_index, log_probs, text=None):
        self._run = self._run + 1 if text == self._last else 1
        self._last = text
        return self._run >= self.patience


SELECTORS = {"fixed": FixedExit, "budget": LayerBudget, "entropy": Entropy,
             "agreement": Agreement, "patience": Patience}


def make_selector(name, value):
    """Selector ``name`` (a key of :data:`SELECTORS`) with its parameter ``value``.

    Example
    -------
    >>> make_selector("entropy", 0.01).threshold
    0.01
    >>> make_selector("confidence", 0.9)
    Traceback (most recent call last):
    ...
    ValueError: the runtime has no selector 'confidence': choose one of agreement, budget, entropy, fixed, patience
    """
    if name not in SELECTORS:
        raise ValueError(f"the runtime has no selector {name!r}: choose one of {', '.join(sorted(SELECTORS))}")
    if value is None:
        raise ValueError(f"selector {name!r} needs a value")
    return SELECTORS[name](value)
