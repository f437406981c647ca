"""An epoch counter that also stops before the time budget would be exceeded."""

import logging
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

    Arguments
    ---------
    limit : int
        Maximum number of epochs.
    budget_s : float, optional
        Seconds available for all the epochs (from the counter's creation).

    Example
    -------
    >>> counter = TimeBudgetEpochCounter(limit=5, budget_s=0.0)
    >>> list(counter)
    [1]
    >>> list(TimeBudgetEpochCounter(limit=3))
    [1, 2, 3]
    """

    def __init__(self, limit, budget_s=None):
        super().__init__(limit)
        self.budget_s = budget_s
        self.start_time = time.time()
        self._epoch_start = None
        self.epoch_durations = []
        self.stopped_for_time = False

    def __next__(self):
        now = time.time()
        if self._epoch_start is not None:
            self.epoch_durations.append(now - self._epoch_start)
            elapsed = now - self.start_time
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

    @property
    def longest_epoch_s(self):
        """Longest epoch after the first (the first if it is the only one)."""
        later = self.epoch_durations[1:] or self.epoch_durations
        return max(later, default=0.0)
