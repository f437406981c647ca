"""Start-up checks of a recipe's hyperparameters: a bad value stops the run
at once with the key's name, instead of a tensor-size error after the first
epoch or a crash after the whole training (``number_of_epochs: 0``,
``test_beam_size: -1``), or a silently ignored weight (``lm_weight: nan``).
"""

from speechbrain_ee.checks import check_number
from speechbrain_ee.losses import check_distillation_options, resolve_exit_weights
from speechbrain_ee.nnet.lengths import check_exit_layers
from speechbrain_ee.warm_start import PARTS, check_parts, check_source_tokenizer, source_checkpoint


# key -> options of check_number; checked when the recipe sets the key
RECIPE_NUMBERS = {
    "number_of_epochs": dict(minimum=1, integer=True),
    "test_beam_size": dict(minimum=0, integer=True),  # 0: greedy CTC
    "vocab_size": dict(minimum=1, integer=True),
    "num_layers": dict(minimum=1, integer=True),
    "avg_checkpoints": dict(minimum=1, integer=True),
    "grad_accumulation_factor": dict(minimum=1, integer=True),
    "sample_rate": dict(minimum=1, integer=True),
    "lr": dict(minimum=0),
    "lm_weight": dict(minimum=0),
    "oov_penalty": dict(minimum=0),
    "ctc_weight": dict(minimum=0, maximum=1),
    "ctc_weight_decode": dict(minimum=0, maximum=1),
    "max_grad_norm": dict(minimum=0),
    "time_budget_s": dict(minimum=0, allow_none=True),
    "distill_weight": dict(minimum=0, allow_none=True),
    "distill_start_epoch": dict(minimum=1, integer=True),
}


def validate_recipe_hparams(hparams):
    """Checks a loaded recipe (a dict of hparams) before any work:
    :data:`RECIPE_NUMBERS`, ``exit_layers`` (with ``num_layers``),
    ``exit_weights`` (against ``exit_layers``) and the self-distillation's
    ``distill_temperature`` and ``distill_blank_threshold``.
    Raises ``ValueError`` naming the first bad key.

    Example
    -------
    >>> validate_recipe_hparams({"number_of_epochs": 3, "exit_layers": [1, 2], "num_layers": 2})
    >>> validate_recipe_hparams({"number_of_epochs": 0})
    Traceback (most recent call last):
    ...
    ValueError: number_of_epochs must be an integer >= 1, got 0
    >>> validate_recipe_hparams({"oov_penalty": -1.0})
    Traceback (most recent call last):
    ...
    ValueError: oov_penalty must be a finite number >= 0, got -1.0
    >>> validate_recipe_hparams({"exit_layers": [2, 4], "exit_weights": "deep"})
    Traceback (most recent call last):
    ...
    ValueError: exit_weights: unknown scheme 'deep' (one of uniform, depth, or a list of numbers)
    """
    for key, options in RECIPE_NUMBERS.items():
        if key in hparams:
            check_number(key, hparams[key], **options)
    exit_layers = hparams.get("exit_layers")
    if exit_layers is not None:
        exit_layers = check_exit_layers(exit_layers, hparams.get("num_layers"))
        if hparams.get("exit_weights") is not None:
            resolve_exit_weights(hparams["exit_weights"], len(exit_layers), exit_layers)
    temperature, threshold = hparams.get("distill_temperature"), hparams.get("distill_blank_threshold")
    if temperature is not None or threshold is not None:
        check_distillation_options(1.0 if temperature is None else temperature, hparams.get("blank_index"),
                                   threshold, prefix="distill_")
    check_warm_start(hparams)


def check_warm_start(hparams):
    """``init_from`` (when set) is a directory holding ``model.ckpt`` and
    ``init_parts`` names known parts: checked before any work, not after
    the data preparation.

    Example
    -------
    >>> check_warm_start({"init_from": None})
    >>> check_warm_start({"init_from": "/no/such/model"})
    Traceback (most recent call last):
    ...
    ValueError: init_from: no model.ckpt in /no/such/model (an exported model or a checkpoint directory)
    """
    source = hparams.get("init_from")
    if source is None:
        return
    try:
        source_checkpoint(source)
        check_source_tokenizer(hparams.get("init_tokenizer"))
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    check_parts(hparams.get("init_parts", PARTS))
