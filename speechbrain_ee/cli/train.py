"""Train a recipe: data preparation, tokenizer, training, per-exit test of
the best checkpoint, then the export for inference when the recipe (or the
command line) sets ``pretrained_folder``.

    sbee train recipes/AN4/hparams/conformer_ee.yaml --data_folder=/path/to/an4 \\
        [--key=value ...] [--pretrained_folder=DIR]

The arguments are those of the recipe's ``train.py``: the yaml, its
overrides (``--key=value``) and SpeechBrain's run options (``--device``,
``--debug``, ...). A missing data folder or an override that names no key
of the yaml is a one-line error (``--traceback`` for the traceback).
"""

import sys

from speechbrain_ee.cli.common import recipe_command_main


def run(argv):
    """``sbee train``: :func:`speechbrain_ee.recipe.run`."""
    from speechbrain_ee.recipe import run as run_recipe

    run_recipe(argv)
    return 0


main = recipe_command_main("train", __doc__, run)

if __name__ == "__main__":
    sys.exit(main())
