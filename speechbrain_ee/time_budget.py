"""An epoch counter that also stops before the time budget would be exceeded,
and can shorten its plan so that a learning-rate schedule ends within it."""

import logging
import statistics
import time

from speechbrain.utils.epoch_loop import EpochCounter

logger = logging.getLogger(__name__)


class TimeBudgetEpochCounter(EpochCounter):
    """SpeechBrain's :class:`EpochCounter` with a wall-clock budget.

    An epoch is started only if the time spent since the counter was created,
    plus the longest epoch seen so far, fits in ``budget_s``. The first epoch
    counts only while it is the only one: it also pays one-time costs (file
    cache, kernels built for new shapes) and takes up to twice as long. With
    ``budget_s=None`` it behaves exactly as ``EpochCounter``. Checkpointing is
    inherited (only the epoch number is saved).

    With ``fit_to_budget``, after every epoch past the first the counter
    also lowers ``limit`` to the epochs that fit: the ones done plus the
    remaining budget over the median epoch after the first (never raising
    it). A schedule planned from ``limit`` (the brains re-plan
    ``lr_annealing`` from it at each epoch) then anneals to its end within the
    budget instead of being cut mid-decay on a slower machine. After a
    resume, the limit is the yaml's again until two epochs have been timed.

    Arguments
    ---------
    limit : int
        Maximum number of epochs.
    budget_s : float, optional
        Seconds available for all the epochs (from the counter's creation).
    fit_to_budget : bool
        Lower ``limit`` to the epochs that fit in ``budget_s``.

    Example
    -------
    >>> counter = TimeBudgetEpochCounter(limit=5, budget_s=0.0)
    >>> list(counter)
    [1]
    >>> list(TimeBudgetEpochCounter(limit=3))
    [1, 2, 3]
    """

    def __init__(self, limit, budget_s=None, fit_to_budget=False):
        super().__init__(limit)
        self.budget_s = budget_s
        self.fit_to_budget = fit_to_budget
        self.planned_limit = limit  # the limit asked for, before any fitting
        self.start_time = time.time()
        self._epoch_start = None
        self.epoch_durations = []
        self.stopped_for_time = False

    def __next__(self):
        now = time.time()
        if self._epoch_start is not None:
            self.epoch_durations.append(now - self._epoch_start)
            elapsed = now - self.start_time
            self._fit_limit(elapsed)
            if self.budget_s is not None and elapsed + self.longest_epoch_s > self.budget_s:
                if self.current < self.limit:
                    self.stopped_for_time = True
                    logger.info(
                        "stopping after epoch %d: %.0f s spent, an epoch takes up to %.0f s, budget %.0f s",
                        self.current, elapsed, self.longest_epoch_s, self.budget_s,
                    )
                raise StopIteration
        self._epoch_start = now
        return super().__next__()

    def _fit_limit(self, elapsed):
        """Lowers ``limit`` to the epochs that fit (``fit_to_budget``)."""
        later = self.epoch_durations[1:]
        if not (self.fit_to_budget and self.budget_s is not None and later):
            return
        fits = self.current + int(max(0.0, self.budget_s - elapsed) // statistics.median(later))
        if fits < self.limit:
            logger.info(
                "%d epochs fit in the budget (%.0f s spent, %.0f s per epoch, budget %.0f s): "
                "planning %d instead of %d", fits, elapsed, statistics.median(later),
                self.budget_s, max(fits, self.current), self.limit,
            )
            self.limit = max(fits, self.current)

    @property
    def longest_epoch_s(self):
        """Longest epoch after the first (the first if it is the only one)."""
        later = self.epoch_durations[1:] or self.epoch_durations
        return max(later, default=0.0)
