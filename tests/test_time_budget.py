from speechbrain_ee import time_budget
from speechbrain_ee.time_budget import TimeBudgetEpochCounter


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_stops_before_an_epoch_that_would_not_fit(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=10, budget_s=100)
    epochs = []
    for epoch in counter:
        epochs.append(epoch)
        clock.now += 30  # each epoch takes 30 s: 3 fit in 100 s, a 4th would end at 120 s
    assert epochs == [1, 2, 3]
    assert counter.stopped_for_time and counter.longest_epoch_s == 30


def test_slow_first_epoch_is_not_the_estimate(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=10, budget_s=100)
    epochs = []
    for epoch in counter:
        epochs.append(epoch)
        clock.now += 40 if epoch == 1 else 15  # 40 + 15 x 4 = 100
    assert epochs == [1, 2, 3, 4, 5] and counter.longest_epoch_s == 15


def test_without_budget_runs_all_epochs(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=4)
    for _ in counter:
        clock.now += 1e6
    assert counter.current == 4 and not counter.stopped_for_time


def test_fit_to_budget_lowers_the_limit_to_what_fits(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=10, budget_s=100, fit_to_budget=True)
    limits = []
    for epoch in counter:
        clock.now += 20 if epoch == 1 else 15
        limits.append(counter.limit)
    # after epoch 2 (35 s spent, 15 s per epoch): 2 + 65 // 15 = 6 epochs fit
    assert counter.current == 6 and counter.limit == 6 and counter.planned_limit == 10
    assert limits[:2] == [10, 10] and set(limits[2:]) == {6}
    assert not counter.stopped_for_time  # the plan ended it, not the guard


def test_fit_to_budget_never_goes_above_the_yaml_limit(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=3, budget_s=1000, fit_to_budget=True)
    for _ in counter:
        clock.now += 10
    assert counter.current == 3 and counter.limit == 3


def test_fit_to_budget_grows_back_after_a_slow_early_epoch(monkeypatch):
    """Epoch 2 slowed by something else on the machine plans too few epochs;
    as the median of the later epochs falls, the plan grows back (at most to
    the yaml's limit) and the budget is used."""
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=20, budget_s=200, fit_to_budget=True)
    limits = []
    for epoch in counter:
        clock.now += {1: 20, 2: 30}.get(epoch, 15)
        limits.append(counter.limit)
    # after epoch 2 (50 s spent, 30 s per epoch): 2 + 150 // 30 = 7 planned
    assert limits[2] == 7
    # after epoch 3 (65 s, median 22.5 s, the last epoch allowed the longest,
    # 30 s): 3 + 1 + (135 - 30) // 22.5 = 8; from epoch 4 on 15 s
    assert limits[3] == 8 and max(limits[2:]) < 20
    # 50 s + 9 x 15 s = 185 s after epoch 11: a 12th could take 30 s (the
    # guard's margin), so eleven epochs, the plan ending where the guard would
    assert counter.current == 11 and counter.limit == 11
    assert not counter.stopped_for_time


def test_without_fit_to_budget_the_limit_stays(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget.time, "time", clock)
    counter = TimeBudgetEpochCounter(limit=10, budget_s=100)
    for _ in counter:
        clock.now += 15
    assert counter.limit == 10 and counter.stopped_for_time
