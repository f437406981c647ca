"""``sbee``: the one command line of speechbrain_ee.

    sbee <command> [options]      sbee <command> --help

Each command lives in its own module of :mod:`speechbrain_ee.cli` with a
``main(argv) -> exit status``; the modules are imported only when their
command runs, so ``sbee --help`` is instant.
"""

import argparse
import importlib
import sys

from speechbrain_ee import __version__

#: command -> (module, one-line description), in the order ``sbee --help`` lists them.
COMMANDS = {
    "train": ("speechbrain_ee.cli.train", "train a recipe (yaml + overrides), test every exit, export"),
    "export": ("speechbrain_ee.cli.export", "export a finished run for inference (--format pytorch|onnx)"),
    "evaluate": ("speechbrain_ee.cli.evaluate", "per-exit WER/CER of an exported model on a manifest"),
    "transcribe": ("speechbrain_ee.cli.transcribe", "transcribe audio files (fixed exit or exit selector)"),
    "curves": ("speechbrain_ee.cli.curves", "exit-selection curves: mean exit vs WER of every selector"),
    "calibrate": ("speechbrain_ee.cli.calibrate", "calibrate an exit selector on a dev set, store it with the model"),
    "attach-lm": ("speechbrain_ee.cli.attach_lm", "add a recipe's transcript LM to an exported model"),
    "attach-lexicon": ("speechbrain_ee.cli.attach_lexicon", "add a lexicon (N-best unknown-word penalty) to a model"),
    "demo": ("speechbrain_ee.cli.demo", "zero-download demo: synthetic corpus, CPU training, WER per exit"),
    "summarize": ("speechbrain_ee.cli.summarize", "turn a finished recipe run into a results JSON record"),
    "compare": ("speechbrain_ee.cli.compare", "early-exit vs single-exit table (WER per depth) from run records"),
}


def build_parser():
    """The top-level parser (for ``sbee --help``; the commands parse their own arguments)."""
    parser = argparse.ArgumentParser(
        prog="sbee", description="Early-exit speech recognition on SpeechBrain.",
        epilog="Run 'sbee <command> --help' for a command's options. Every command prints user errors "
               "as one line 'error: ...' and exits with status 2 (--debug: the traceback).",
    )
    parser.add_argument("--version", action="version", version=f"speechbrain_ee {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="<command>")
    for name, (_, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv=None):
    """Entry point of ``sbee``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        (parser.print_help if argv else parser.print_usage)(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        parser.parse_args(argv[:1])
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)} (sbee --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
