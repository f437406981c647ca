"""Shared bits of the command-line entry points."""

import sys


def exit_code(function, *args, errors=(FileNotFoundError, ValueError), **kwargs):
    """Calls ``function(*args, **kwargs)``: 0 when it returns, 2 (after
    ``error: <message>`` on stderr) when it raises one of ``errors`` — bad
    input a user can fix, no traceback.

    Example
    -------
    >>> exit_code(int, "12")
    0
    >>> exit_code(int, "twelve")  # doctest: +SKIP
    2
    """
    try:
        function(*args, **kwargs)
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
