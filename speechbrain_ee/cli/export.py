"""Export a finished run for inference.

    sbee export recipes/AN4/hparams/conformer_ee.yaml --data_folder=/path/to/an4 \\
        --pretrained_folder=pretrained/an4-conformer-ctc-ee

PyTorch export (the default, ``--format pytorch``): the best checkpoint of
the run (the average of the ``avg_checkpoints`` best when the recipe sets it)
is written to ``--pretrained_folder`` without training or testing again; the
arguments are the run's (same yaml and overrides, so the same output folder).
``sbee export --format onnx ...`` hands the rest of the command line to the
ONNX exporter (:mod:`speechbrain_ee.export.cli`, when installed).
"""

import importlib
import sys

from speechbrain_ee.cli.common import UsageError, handle_errors, recipe_command_main

#: ``--format`` -> module with ``main(argv) -> exit status`` (None: the PyTorch export below).
FORMATS = {"pytorch": None, "onnx": "speechbrain_ee.export.cli"}


def run(argv):
    """``sbee export --format pytorch``: :func:`speechbrain_ee.recipe.export_trained`."""
    from speechbrain_ee.recipe import export_trained

    checkpoint = export_trained(argv)
    print(f"exported {checkpoint.path}")
    return 0


export_pytorch = recipe_command_main("export", __doc__, run)


def split_format(argv):
    """``(format, the other arguments)``; ``--format X`` or ``--format=X``, default ``pytorch``.

    Example
    -------
    >>> split_format(["a.yaml", "--format", "onnx", "--x=1"])
    ('onnx', ['a.yaml', '--x=1'])
    >>> split_format(["--format=pytorch", "a.yaml"])
    ('pytorch', ['a.yaml'])
    """
    argv, fmt, rest = list(argv), "pytorch", []
    while argv:
        arg = argv.pop(0)
        if arg == "--format":
            if not argv:
                raise UsageError("--format needs a value: " + ", ".join(FORMATS))
            fmt = argv.pop(0)
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt, rest


def main(argv=None):
    """Entry point of ``sbee export``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        fmt, rest = split_format(argv)
    except UsageError as err:
        return handle_errors(_raise, err)
    if FORMATS[fmt] is None:
        return export_pytorch(rest)
    try:
        exporter = importlib.import_module(FORMATS[fmt])
    except ModuleNotFoundError as err:
        return handle_errors(_raise, UsageError(f"--format {fmt} is not available in this installation ({err})"))
    return exporter.main(rest)


def _raise(err):
    raise err


if __name__ == "__main__":
    sys.exit(main())
