"""Start-up checks of a recipe's hyperparameters: a bad value stops the run
at once with the key's name, instead of a tensor-size error after the first
epoch or a crash after the whole training (``number_of_epochs: 0``,
``test_beam_size: -1``), or a silently ignored weight (``lm_weight: nan``).
"""

import math
import numbers


def check_exit_layers(exit_layers, num_layers=None, field="exit_layers", where=""):
    """``exit_layers`` as a list of int, checked: whole numbers (``2.5`` is an
    error, not layer 2), strictly increasing, within ``1..num_layers``.

    Arguments
    ---------
    exit_layers : sequence
        The value from the yaml / a constructor.
    num_layers : int, optional
        Layers of the encoder (upper bound).
    field : str
        Name used in the error.
    where : str
        Appended to the range error (e.g. the pretrained model's name).

    Example
    -------
    >>> check_exit_layers([2, 4], 4)
    [2, 4]
    >>> check_exit_layers([2.5, 6], 12)
    Traceback (most recent call last):
    ...
    ValueError: exit_layers: layers must be whole numbers, got [2.5, 6]
    """
    if isinstance(exit_layers, (str, bytes)) or not hasattr(exit_layers, "__iter__"):
        raise ValueError(f"{field}: expected a list of layer numbers, got {exit_layers!r}")
    exit_layers = list(exit_layers)
    if any(isinstance(e, bool) or not isinstance(e, numbers.Integral) for e in exit_layers):
        raise ValueError(f"{field}: layers must be whole numbers, got {exit_layers}")
    exit_layers = [int(e) for e in exit_layers]
    if not exit_layers or sorted(set(exit_layers)) != exit_layers:
        raise ValueError(f"{field} must be strictly increasing, got {exit_layers}")
    if exit_layers[0] < 1 or (num_layers is not None and exit_layers[-1] > num_layers):
        raise ValueError(f"{field} {exit_layers} outside 1..{num_layers}{where}")
    return exit_layers


def check_number(name, value, minimum=None, maximum=None, integer=False, allow_none=False):
    """``value`` if it is a finite number within ``[minimum, maximum]``
    (an integer when ``integer``), else a ``ValueError`` naming ``name``.

    Example
    -------
    >>> check_number("lm_weight", 0.5, minimum=0)
    0.5
    >>> check_number("lm_weight", float("nan"), minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: lm_weight must be a finite number >= 0, got nan
    """
    if value is None and allow_none:
        return value
    kind = "an integer" if integer else "a finite number"
    bounds = " and ".join(
        f"{op} {bound}" for op, bound in ((">=", minimum), ("<=", maximum)) if bound is not None
    )
    wanted = f"{name} must be {kind}" + (f" {bounds}" if bounds else "")
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not numeric or not math.isfinite(value) or (integer and not isinstance(value, numbers.Integral)):
        raise ValueError(f"{wanted}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{wanted}, got {value!r}")
    return value


# key -> options of check_number; checked when the recipe sets the key
RECIPE_NUMBERS = {
    "number_of_epochs": dict(minimum=1, integer=True),
    "test_beam_size": dict(minimum=1, integer=True),
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
}


def validate_recipe_hparams(hparams):
    """Checks a loaded recipe (a dict of hparams) before any work:
    :data:`RECIPE_NUMBERS` and ``exit_layers`` (with ``num_layers``).
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
    """
    for key, options in RECIPE_NUMBERS.items():
        if key in hparams:
            check_number(key, hparams[key], **options)
    if hparams.get("exit_layers") is not None:
        check_exit_layers(hparams["exit_layers"], hparams.get("num_layers"))
