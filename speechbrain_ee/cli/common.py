"""What every ``sbee`` command shares: one argument parser class, the shared
flags (same name, same meaning, same default in every command), argument
types that reject nonsense, output files checked before the work, and one
error handler.

Conventions
-----------
``--model DIR``
    An exported model directory.
``--csv FILE``
    A manifest (``ID,duration,wav,spk_id,wrd``; ``transcribe`` needs only ``wav``).
``--beam-size N``
    0: greedy CTC; N > 0: beam of N; not given: the model's exported decoding.
``--output FILE``
    Always a file (per-utterance results, written as they come);
    ``--output-dir DIR`` is always a folder.
``--json-out FILE``
    The run's summary JSON (checked writable before the work, written at the end).
``--batch-size``, ``--threads``, ``--device``
    Utterances per batch, torch threads, torch device.
``--debug``
    The traceback of an error instead of one line (recipe commands, whose
    ``--debug`` is SpeechBrain's debug run, take ``--traceback``).
"""

import argparse
import math
import os
import shlex
import sys
import tempfile
from contextlib import nullcontext

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


# ---------------------------------------------------------------------- argument types
def _number(text, kind, low=None, high=None, low_open=False):
    what = "an integer" if kind is int else "a number"
    bound = ""
    if low is not None and high is not None:
        bound = f" in [{low:g}, {high:g}]"
    elif low is not None:
        bound = f" {'>' if low_open else '>='} {low:g}"
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text!r}")
    return value


def positive_int(text):
    """Argument type: an integer >= 1."""
    return _number(text, int, low=1)


def non_negative_int(text):
    """Argument type: an integer >= 0."""
    return _number(text, int, low=0)


def finite_float(text):
    """Argument type: a finite number (no nan, no inf)."""
    return _number(text, float)


def non_negative_float(text):
    """Argument type: a finite number >= 0.

    Example
    -------
    >>> non_negative_float("0.3")
    0.3
    >>> non_negative_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number >= 0, got 'nan'
    """
    return _number(text, float, low=0.0)


def unit_interval(text):
    """Argument type: a number in [0, 1]."""
    return _number(text, float, low=0.0, high=1.0)


# ---------------------------------------------------------------------- shared flags
def add_model_argument(parser, required=True):
    """``--model DIR``."""
    parser.add_argument("--model", required=required, metavar="DIR", help="exported model directory")


def add_csv_argument(parser, required=True, help="manifest (ID,duration,wav,spk_id,wrd)"):
    """``--csv FILE``."""
    parser.add_argument("--csv", required=required, metavar="FILE", help=help)


def add_decoding_arguments(parser):
    """``--beam-size``, ``--lm-weight``, ``--oov-penalty``, ``--ctc-weight``
    and ``--decoding``: each replaces the model's exported value (none given:
    the model decodes as exported)."""
    from speechbrain_ee.inference.decoders import AED_DECODINGS

    group = parser.add_argument_group("decoding (default: as the model was exported)")
    group.add_argument("--beam-size", type=non_negative_int, default=None, metavar="N",
                       help="0: greedy CTC; N: beam search of N (default: the model's)")
    group.add_argument("--lm-weight", type=non_negative_float, default=None,
                       help="weight of the model's LM (0: no LM)")
    group.add_argument("--oov-penalty", type=non_negative_float, default=None,
                       help="beam search: penalty per N-best word outside the model's lexicon (0: none)")
    group.add_argument("--ctc-weight", type=unit_interval, default=None,
                       help="attention models: CTC weight of the joint search or of the rescoring")
    group.add_argument("--decoding", choices=AED_DECODINGS, default=None,
                       help="attention models: joint CTC/attention search or attention rescoring "
                            "of the CTC prefix beam")


def add_run_arguments(parser, batch_size=16):
    """``--batch-size``, ``--threads``, ``--device``, ``--savedir``."""
    group = parser.add_argument_group("run")
    group.add_argument("--batch-size", type=positive_int, default=batch_size, metavar="N",
                       help="utterances per batch (default: %(default)s)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="torch threads (default: torch's)")
    group.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    group.add_argument("--savedir", default=None, metavar="DIR",
                       help="where SpeechBrain links the model files (default: none, read in place)")


def add_output_argument(parser, help):
    """``--output FILE`` (a file, always)."""
    parser.add_argument("--output", default=None, metavar="FILE", help=help)


def add_json_out_argument(parser, help="write the summary JSON here"):
    """``--json-out FILE``."""
    parser.add_argument("--json-out", default=None, metavar="FILE", help=help)


# ---------------------------------------------------------------------- models
def is_attention_model(model_dir):
    """Whether the exported model in ``model_dir`` is an attention
    encoder-decoder (its ``hyperparams.yaml`` defines a ``searcher``)."""
    path = os.path.join(model_dir, "hyperparams.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"not a model directory (no hyperparams.yaml): {model_dir}")
    with open(path) as handle:
        return "\nsearcher:" in "\n" + handle.read()


#: The exported hyperparameter holding an attention model's decoding CTC weight.
DECODING_CTC_WEIGHT_KEY = "ctc_weight"


def decoding_overrides(model_dir, lm_weight=None, oov_penalty=None, ctc_weight=None, aed_decoding=None):
    """Hyperparameter overrides replacing the exported decoding weights (None:
    keep the exported one); flags the model cannot use are errors."""
    from speechbrain_ee.recipe import rescoring_overrides

    attention = is_attention_model(model_dir)
    if not attention and (ctc_weight is not None or aed_decoding is not None):
        raise ValueError("--ctc-weight and --decoding apply to attention models (EarlyExitAED) only")
    overrides = rescoring_overrides(model_dir, lm_weight, oov_penalty)
    if ctc_weight is not None:
        overrides[DECODING_CTC_WEIGHT_KEY] = float(ctc_weight)
    return overrides


def load_recognizer(args):
    """The :class:`~speechbrain_ee.inference.EarlyExitASR` of ``args.model``
    with the decoding flags of :func:`add_decoding_arguments` (those given
    replace the exported values) and :func:`add_run_arguments`."""
    import torch

    from speechbrain_ee.inference.interfaces import EarlyExitASR

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = decoding_overrides(args.model, getattr(args, "lm_weight", None), getattr(args, "oov_penalty", None),
                                   getattr(args, "ctc_weight", None), getattr(args, "decoding", None))
    return EarlyExitASR.from_hparams(
        args.model, savedir=args.savedir, overrides=overrides, run_opts={"device": args.device},
        beam_size=getattr(args, "beam_size", None), aed_decoding=getattr(args, "decoding", None),
    )


# ---------------------------------------------------------------------- outputs
def open_output(path, flag="--output"):
    """Opens ``path`` for writing now, before any work (folders made), line
    buffered so that results written as they come survive a later failure;
    ``None`` or ``-``: stdout. A path that cannot be written is a one-line
    error naming it."""
    if path in (None, "-"):
        return sys.stdout
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        return open(path, "w", buffering=1)
    except OSError as err:
        raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err


def output_dir(path, flag="--output-dir"):
    """Makes the folder ``path`` now, before any work, and checks that it
    can be written (a one-line error naming it otherwise); returns ``path``."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {flag} {path}: permission denied")
    return path


class PendingFile:
    """An output file checked before the work and written at its end in one
    go (a temporary file beside it, renamed into place: never half a file).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out", "summary.json")
    >>> pending = PendingFile(path)        # the folder exists and is writable now
    >>> pending.write_text("{}")
    >>> open(path).read()
    '{}'
    """

    def __init__(self, path, flag="--json-out"):
        self.path = path
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot write {flag} {path}: it is a folder")
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            handle, self.tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
            os.close(handle)
        except OSError as err:
            raise OSError(f"cannot write {flag} {path}: {err.strerror or err}") from err

    def write_text(self, text):
        """Writes ``text`` and renames the file into place."""
        try:
            with open(self.tmp, "w") as handle:
                handle.write(text)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Removes the temporary file (nothing is written)."""
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()  # after write_text, nothing is left to remove


def pending_json(path, flag="--json-out"):
    """:class:`PendingFile` for ``path``; when no path is given, a context
    giving None (``with pending_json(args.json_out) as out:``)."""
    return nullcontext() if path is None else PendingFile(path, flag)


# ---------------------------------------------------------------------- recipe commands
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
