"""Checks of numeric options, shared by every layer: a bad value fails at
once with a one-line ``ValueError`` naming the option, the range it wanted
and the value it got (``lm_weight must be a finite number >= 0, got nan``).

Booleans are never numbers here (``True`` is an ``int`` to Python, never a
weight or a count to a user); NumPy scalars are (they register as
:class:`numbers.Real`).
"""

import math
import numbers


def is_real(value):
    """Whether ``value`` is a real number (``bool`` excluded, NaN and inf included).

    Example
    -------
    >>> is_real(0.5), is_real(True), is_real("0.5")
    (True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name, value, minimum=None, maximum=None, integer=False, allow_none=False,
                 above=None, allow_infinite=False):
    """``value`` if it is a number within the bounds, else a ``ValueError``
    naming ``name``.

    Arguments
    ---------
    name : str
        The option's name, as the user wrote it (a yaml key, a flag).
    value : object
        The value to check; returned unchanged when it passes.
    minimum, maximum : float, optional
        Inclusive bounds.
    integer : bool
        Only an integer (:class:`numbers.Integral`) passes; ``2.0`` does not
        (:func:`check_integer` accepts it).
    allow_none : bool
        ``None`` passes (an option whose ``null`` means "off").
    above : float, optional
        Exclusive lower bound (``above=0``: strictly positive).
    allow_infinite : bool
        ``inf`` and ``-inf`` pass (a threshold that never or always fires);
        NaN never does.

    Example
    -------
    >>> check_number("lm_weight", 0.5, minimum=0)
    0.5
    >>> check_number("lm_weight", float("nan"), minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: lm_weight must be a finite number >= 0, got nan
    >>> check_number("distill_blank_threshold", 1.5, above=0, maximum=1, allow_none=True)
    Traceback (most recent call last):
    ...
    ValueError: distill_blank_threshold must be null or a finite number > 0 and <= 1, got 1.5
    """
    if value is None and allow_none:
        return value
    kind = "an integer" if integer else "a number" if allow_infinite else "a finite number"
    bounds = " and ".join(
        f"{op} {bound}" for op, bound in ((">", above), (">=", minimum), ("<=", maximum)) if bound is not None
    )
    wanted = f"{name} must be {'null or ' if allow_none else ''}{kind}" + (f" {bounds}" if bounds else "")
    if not is_real(value) or math.isnan(value) or (math.isinf(value) and not allow_infinite) \
            or (integer and not isinstance(value, numbers.Integral)):
        raise ValueError(f"{wanted}, got {value!r}")
    if (above is not None and not value > above) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        raise ValueError(f"{wanted}, got {value!r}")
    return value


def check_integer(name, value, minimum=None, maximum=None):
    """``value`` as an ``int`` when it is an integer or an integral float
    (``2.0``, as some parsers give a count) within the bounds, else a
    ``ValueError`` naming ``name``.

    Example
    -------
    >>> check_integer("patience", 2.0, minimum=1)
    2
    >>> check_integer("patience", 2.5, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: patience must be an integer >= 1, got 2.5
    """
    if is_real(value) and math.isfinite(value) and value == int(value):
        value = int(value)
    return check_number(name, value, minimum, maximum, integer=True)
