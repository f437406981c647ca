"""Learning-rate schedulers the SpeechBrain way: step-level ones after every
optimiser step, epoch-level ones once per epoch from the validation result.

SpeechBrain's schedulers come in two kinds: those called with the optimiser
after each step (``NoamScheduler``, ``LinearWarmupScheduler``...) and those
called once an epoch with a number (``NewBobScheduler`` with the validation
metric, ``StepScheduler``/``LinearScheduler`` with the epoch,
``ReduceLROnPlateau`` with both), whose returned learning rate the Brain
applies with ``update_learning_rate``. The Brains of this package accept both.
"""

from speechbrain.nnet.schedulers import (
    LinearScheduler, NewBobScheduler, ReduceLROnPlateau, StepScheduler, update_learning_rate,
)

EPOCH_SCHEDULERS = (NewBobScheduler, StepScheduler, LinearScheduler, ReduceLROnPlateau)


def is_epoch_scheduler(scheduler):
    """Whether ``scheduler`` is stepped once per epoch (see the module).

    Example
    -------
    >>> from speechbrain.nnet.schedulers import NoamScheduler
    >>> is_epoch_scheduler(NewBobScheduler(1.0)), is_epoch_scheduler(NoamScheduler(1.0, 10))
    (True, False)
    """
    return isinstance(scheduler, EPOCH_SCHEDULERS)


def step_epoch_scheduler(scheduler, optimizer, epoch, metric):
    """Steps an epoch-level scheduler at the end of validation and applies its
    learning rate to ``optimizer``; returns ``(old_lr, new_lr)``.

    Arguments
    ---------
    scheduler : NewBobScheduler, StepScheduler, LinearScheduler or ReduceLROnPlateau
        The scheduler.
    optimizer : torch.optim.Optimizer
        The Brain's optimiser.
    epoch : int
        The epoch that ended.
    metric : float
        The validation value that drives NewBob / plateau schedulers.

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    >>> newbob = NewBobScheduler(initial_value=1.0, annealing_factor=0.5, patient=0)
    >>> step_epoch_scheduler(newbob, opt, 1, 10.0), step_epoch_scheduler(newbob, opt, 2, 11.0)
    ((1.0, 1.0), (1.0, 0.5))
    >>> opt.param_groups[0]["lr"]
    0.5
    """
    if isinstance(scheduler, NewBobScheduler):
        old_lr, new_lr = scheduler(metric)
    elif isinstance(scheduler, ReduceLROnPlateau):
        old_lr, new_lr = scheduler([optimizer], epoch, metric)
    elif isinstance(scheduler, (StepScheduler, LinearScheduler)):
        old_lr, new_lr = scheduler(epoch)
    else:
        raise TypeError(f"not an epoch-level scheduler: {type(scheduler).__name__}")
    update_learning_rate(optimizer, new_lr)
    return old_lr, new_lr
