"""An epoch counter that also stops before the time budget would be exceeded,
and can fit its plan to the budget so that a learning-rate schedule ends
within it."""

import logging
import statistics
import time

import torch

from speechbrain.utils.epoch_loop import EpochCounter

logger = logging.getLogger(__name__)


def main_process_values(*values):
    """``values`` as the main process measured them, on every process of a
    distributed run (so that every process takes the same decisions, e.g.
    how many epochs to run); unchanged otherwise.

    Example
    -------
    >>> main_process_values(1.5, 2.0)
    (1.5, 2.0)
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    shared = list(values)
    torch.distributed.broadcast_object_list(shared, src=0)
    return tuple(shared)


class TimeBudgetEpochCounter(EpochCounter):
    """SpeechBrain's :class:`EpochCounter` with a wall-clock budget.

    An epoch is started only if the time spent since the counter was created,
    plus the longest epoch seen so far, fits in ``budget_s``. The first epoch
    counts only while it is the only one: it also pays one-time costs (file
    cache, kernels built for new shapes) and takes up to twice as long. With
    ``budget_s=None`` it behaves exactly as ``EpochCounter``. Checkpointing is
    inherited (only the epoch number is saved). Under DDP every process uses
    the main process's timings, so all stop after the same epoch.

    With ``fit_to_budget``, after every epoch past the first the counter
    also sets ``limit`` to the epochs that fit: the ones done plus those
    the remaining budget holds at the median pace of the epochs after the
    first, the last one allowed the longest epoch seen (the stop guard's
    margin), never more than the yaml's limit (``planned_limit``). The
    estimate is re-made every epoch, so a plan made from an early epoch
    slowed by something else on the machine grows back once later epochs are
    faster. A schedule planned from
    ``limit`` (the brains re-plan ``lr_annealing`` from it at each epoch) then
    anneals to its end within the budget instead of being cut mid-decay on a
    slower machine. After a resume, the limit is the yaml's again until two
    epochs have been timed.

    Arguments
    ---------
    limit : int
        Maximum number of epochs.
    budget_s : float, optional
        Seconds available for all the epochs (from the counter's creation).
    fit_to_budget : bool
        Set ``limit`` after every epoch to the epochs that fit in
        ``budget_s`` (at most the ``limit`` given here).

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
            duration, elapsed = main_process_values(now - self._epoch_start, now - self.start_time)
            self.epoch_durations.append(duration)
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
        """Sets ``limit`` to the epochs that fit, at most ``planned_limit``
        (``fit_to_budget``)."""
        later = self.epoch_durations[1:]
        if not (self.fit_to_budget and self.budget_s is not None and later):
            return
        median_s = statistics.median(later)
        fits = self.current + self.epochs_that_fit(self.budget_s - elapsed, median_s)
        new_limit = min(fits, self.planned_limit)
        if new_limit != self.limit:
            logger.info(
                "%d epochs fit in the budget (%.0f s spent, %.0f s per epoch, budget %.0f s): "
                "planning %d instead of %d", fits, elapsed, median_s, self.budget_s, new_limit, self.limit,
            )
            self.limit = new_limit

    def epochs_that_fit(self, remaining_s, median_s):
        """More epochs that fit in ``remaining_s``: each takes ``median_s``
        but the last is allowed :attr:`longest_epoch_s`, the margin the stop
        guard asks for, so a plan is never cut short by the guard when the
        epochs keep their pace."""
        if remaining_s < self.longest_epoch_s:
            return 0
        return 1 + int((remaining_s - self.longest_epoch_s) // median_s)

    @property
    def longest_epoch_s(self):
        """Longest epoch after the first (the first if it is the only one)."""
        later = self.epoch_durations[1:] or self.epoch_durations
        return max(later, default=0.0)
