"""The brains plan the learning-rate schedule from the epoch counter's limit."""

from types import SimpleNamespace

from speechbrain.nnet.schedulers import LinearWarmupScheduler

from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.time_budget import TimeBudgetEpochCounter


def fake_brain(limit, steps_per_epoch=50):
    hparams = SimpleNamespace(
        lr_annealing=LinearWarmupScheduler(1e-3, num_warmup_steps=10, num_training_steps=10000),
        epoch_counter=TimeBudgetEpochCounter(limit=limit),
    )
    return SimpleNamespace(hparams=hparams, optimizer_steps_per_epoch=steps_per_epoch)


def test_schedule_spans_the_planned_epochs():
    brain = fake_brain(limit=8)
    EarlyExitCTCBrain.plan_schedule(brain)
    assert brain.hparams.lr_annealing.num_training_steps == 400
    assert brain.hparams.lr_annealing.calculate_lr(400) == 0.0


def test_schedule_follows_a_lowered_limit():
    brain = fake_brain(limit=8)
    EarlyExitCTCBrain.plan_schedule(brain)
    brain.hparams.epoch_counter.limit = 5  # what fit_to_budget does
    EarlyExitCTCBrain.plan_schedule(brain)
    annealing = brain.hparams.lr_annealing
    assert annealing.num_training_steps == 250 and annealing.calculate_lr(250) == 0.0
    assert annealing.calculate_lr(249) > 0.0


def test_without_steps_per_epoch_the_schedule_is_left_alone():
    brain = fake_brain(limit=8, steps_per_epoch=None)
    EarlyExitCTCBrain.plan_schedule(brain)
    assert brain.hparams.lr_annealing.num_training_steps == 10000
