"""Adds a lexicon (the words of training transcripts) to an already exported
CTC model directory, for the N-best lexicon penalty of its beam search::

    sbee attach-lexicon --model pretrained/an4-conformer-ctc-ee \\
        --csv <manifests>/train.csv --oov-penalty 4

Writes ``lexicon.txt`` and adds ``oov_penalty``/``lexicon_file`` to the
model's ``hyperparams.yaml`` (see :func:`speechbrain_ee.recipe.add_lexicon`);
nothing is written when a check fails. Models exported by a recipe with a
``lexicon_file`` already have one.
"""

import os
import sys
import tempfile

from speechbrain_ee.cli.arguments import add_model_argument, non_negative_float
from speechbrain_ee.cli.common import command_main
from speechbrain_ee.checkpoints import update_checksums
from speechbrain_ee.checks import check_number
from speechbrain_ee.decoding import write_lexicon
from speechbrain_ee.recipe import add_lexicon, has_lexicon


def attach_lexicon(model_dir, csv_files, oov_penalty):
    """Writes the words of ``csv_files`` (their ``wrd`` column) to
    ``model_dir/lexicon.txt`` and sets ``oov_penalty`` in its hyperparams.

    Raises
    ------
    FileNotFoundError
        ``model_dir`` has no ``hyperparams.yaml`` or a CSV is missing.
    ValueError
        The model already has a lexicon, ``oov_penalty`` is negative, or
        a CSV has no ``wrd`` column.
    """
    hyperparams = os.path.join(model_dir, "hyperparams.yaml")
    if not os.path.isfile(hyperparams):
        raise FileNotFoundError(f"not an exported model directory (no hyperparams.yaml): {model_dir}")
    with open(hyperparams) as handle:
        text = handle.read()
    if has_lexicon(text):
        raise ValueError(f"{hyperparams} already has a lexicon")
    check_number("oov_penalty", oov_penalty, minimum=0)
    with tempfile.TemporaryDirectory() as tmp:  # read every CSV before touching the model
        lexicon = write_lexicon(csv_files, os.path.join(tmp, "lexicon.txt"))
        text = add_lexicon(text, lexicon, oov_penalty, model_dir)
    with open(hyperparams, "w") as handle:
        handle.write(text)
    update_checksums(model_dir, ["hyperparams.yaml", "lexicon.txt"])


def add_arguments(parser):
    """The flags of ``sbee attach-lexicon``."""
    add_model_argument(parser)
    parser.add_argument("--csv", required=True, nargs="+", metavar="FILE",
                        help="manifests whose wrd column gives the words")
    parser.add_argument("--oov-penalty", type=non_negative_float, required=True,
                        help="score taken off per unknown word")


def run(args):
    """``sbee attach-lexicon``."""
    attach_lexicon(args.model, args.csv, args.oov_penalty)
    print(f"wrote {os.path.join(args.model, 'lexicon.txt')} and the lexicon section of its hyperparams.yaml")


main = command_main("attach-lexicon", __doc__, add_arguments, run)

if __name__ == "__main__":
    sys.exit(main())
