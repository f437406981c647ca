"""What every ``sbee`` command shares: one argument parser class, one error
handler (user errors: one line ``error: ...``, exit status 2; ``--debug``:
the traceback) and the ``main`` of a command, also for the commands that take
a recipe's arguments. The shared flags are in
:mod:`speechbrain_ee.cli.arguments`, the outputs in :mod:`speechbrain_ee.cli.outputs`.
"""

import argparse
import shlex
import sys

from speechbrain_ee.data.manifest import DataPreparationError

#: Exceptions that mean bad input a user can fix: one line, exit status 2.
USER_ERRORS = (ValueError, OSError, DataPreparationError)

#: Flags that ask for the traceback instead of the one-line error.
TRACEBACK_FLAGS = ("--debug", "--traceback")


class UsageError(ValueError):
    """A command line that does not parse (unknown flag, bad value...)."""


class CommandParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors go through :func:`handle_errors` (one
    line, exit status 2) instead of printing the usage and exiting.

    Example
    -------
    >>> from speechbrain_ee.cli.arguments import non_negative_int
    >>> parser = CommandParser(prog="sbee demo")
    >>> _ = parser.add_argument("--beam-size", type=non_negative_int)
    >>> parser.parse_args(["--beam-size", "-1"])
    Traceback (most recent call last):
    ...
    speechbrain_ee.cli.common.UsageError: argument --beam-size: must be an integer >= 0, got '-1' (see sbee demo --help)
    """

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def handle_errors(function, *args, debug=False, **kwargs):
    """Calls ``function(*args, **kwargs)`` and returns its exit status (None
    counts as 0). A user error (:data:`USER_ERRORS`) prints ``error: <message>``
    on one line of stderr and gives 2, or re-raises with ``debug``; Ctrl-C
    gives 130; ``SystemExit`` (``--help``) gives its code.

    Example
    -------
    >>> handle_errors(int, "12")
    12
    >>> handle_errors(int, "twelve")  # doctest: +SKIP
    2
    """
    try:
        status = function(*args, **kwargs)
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    return 0 if status is None else status


def one_line(err):
    """An exception's message on one line (file errors name their file).

    Example
    -------
    >>> one_line(ValueError("bad value\\n  in line 2"))
    'bad value in line 2'
    >>> one_line(FileNotFoundError(2, "No such file or directory", "x.csv"))
    'No such file or directory: x.csv'
    """
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split()) or type(err).__name__


def command_main(name, description, add_arguments, run):
    """The ``main(argv=None) -> exit status`` of ``sbee <name>``: parses with
    :class:`CommandParser` (``add_arguments`` adds the command's flags, then
    ``--debug``) and calls ``run(args)`` under :func:`handle_errors`."""

    def main(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = CommandParser(prog=f"sbee {name}", description=description,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        parser.add_argument("--debug", "--traceback", dest="debug", action="store_true",
                            help="show the traceback of an error")
        return handle_errors(lambda: run(parser.parse_args(argv)),
                             debug=any(flag in argv for flag in TRACEBACK_FLAGS))

    main.__doc__ = f"Entry point of ``sbee {name}``; returns the exit status."
    return main


def command_line(name, argv):
    """The command as a user would type it, for result records.

    Example
    -------
    >>> command_line("evaluate", ["--model", "my model"])
    "sbee evaluate --model 'my model'"
    """
    return shlex.join(["sbee", name, *(sys.argv[1:] if argv is None else argv)])


def recipe_errors(function, *args):
    """Calls ``function(*args)``, turning hyperpyyaml's errors about the
    command line (an override naming no key of the yaml, an override that is
    not yaml) into one-line :class:`UsageError`; other errors pass."""
    import re

    from ruamel.yaml import YAMLError

    try:
        return function(*args)
    except KeyError as err:
        match = re.match(r"Override '([^']+)' not found", str(err.args[0]) if err.args else "")
        if match is None:
            raise
        raise UsageError(f"unknown override --{match[1]}: the recipe yaml has no key {match[1]!r}") from err
    except YAMLError as err:
        raise UsageError(f"bad yaml in the recipe or an override: {one_line(err)}") from err


def recipe_command_main(name, description, run):
    """``main(argv=None)`` of a command taking a recipe's arguments
    (``<recipe.yaml> [--key=value ...]`` plus SpeechBrain's run options, as
    ``train.py`` does): ``run(argv)`` under :func:`handle_errors` and
    :func:`recipe_errors`. SpeechBrain's ``--debug`` is its debug run here;
    ``--traceback`` shows the traceback of an error."""

    def main(argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        if not argv or argv[0] in ("-h", "--help"):
            print(f"usage: sbee {name} <recipe.yaml> [--key=value ...] [--traceback]\n\n{description}",
                  file=sys.stdout if argv else sys.stderr)
            return 0 if argv else 2
        debug = "--traceback" in argv
        argv = [a for a in argv if a != "--traceback"]
        return handle_errors(recipe_errors, run, argv, debug=debug)

    main.__doc__ = f"Entry point of ``sbee {name}``; returns the exit status."
    return main
