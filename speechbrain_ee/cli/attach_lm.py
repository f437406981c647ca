"""Adds a recipe's transcript LM to an already exported model directory.

    cd recipes/AN4
    sbee attach-lm hparams/conformer_ee.yaml --data_folder=/path/to/an4 \\
        --lm_weight=0.3 --model=../../pretrained/an4-conformer-ctc-ee

Takes the recipe's arguments (so the same output folder: an LM the run
trained is loaded, a missing one is trained, ~1 min) plus ``--model``, the
exported directory. The LM must speak the model's tokens: the recipe's
tokenizer has to have the very pieces of the model's ``tokenizer.model``.
Writes ``lm.yaml``/``lm.ckpt`` and the LM section of ``hyperparams.yaml``
(see :func:`speechbrain_ee.recipe.add_language_model`); nothing is written
when a check fails.
"""

import os
import sys

import sentencepiece

from speechbrain_ee.cli.common import UsageError, recipe_command_main
from speechbrain_ee.checkpoints import update_checksums
from speechbrain_ee.recipe import add_language_model, has_language_model, load_recipe, prepare_tokenizer, recipe_file


def tokenizer_pieces(tokenizer):
    """All pieces of a SentencePiece processor, in id order."""
    return [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]


def attach_language_model(model_dir, hparams_file, hparams):
    """Trains or loads the recipe's LM and adds it to ``model_dir``.

    Raises
    ------
    FileNotFoundError
        ``model_dir`` has no ``hyperparams.yaml`` / ``tokenizer.model``.
    ValueError
        The recipe has no LM or ``lm_weight`` is not > 0, the model already
        has one, or the tokenizers differ.
    """
    hyperparams = os.path.join(model_dir, "hyperparams.yaml")
    for path in (hyperparams, os.path.join(model_dir, "tokenizer.model")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"not an exported model directory (no {os.path.basename(path)}): {model_dir}")
    if "train_lm" not in hparams or not hparams.get("lm_weight", 0) > 0:
        raise ValueError(f"{hparams_file}: the recipe has no transcript LM (train_lm) or lm_weight is not > 0")
    with open(hyperparams) as handle:
        text = handle.read()
    if has_language_model(text):
        raise ValueError(f"{hyperparams} already has an LM")
    hparams["prepare_data"]()  # the manifests the tokenizer and LM read (kept if there)
    prepare_tokenizer(hparams)
    model_tokenizer = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    if tokenizer_pieces(model_tokenizer) != tokenizer_pieces(hparams["tokenizer"]):
        raise ValueError(f"the recipe's tokenizer differs from {model_dir}/tokenizer.model: the LM would not fit")
    hparams["train_lm"](hparams)
    text = add_language_model(text, hparams, model_dir, recipe_file(hparams_file, hparams, "lm_yaml"))
    with open(hyperparams, "w") as handle:
        handle.write(text)
    update_checksums(model_dir, ["hyperparams.yaml", "lm.yaml", "lm.ckpt"])


def split_model(argv):
    """``(model directory, the recipe's arguments)`` from ``--model=DIR`` or ``--model DIR``.

    Example
    -------
    >>> split_model(["a.yaml", "--model", "m", "--x=1"])
    ('m', ['a.yaml', '--x=1'])
    """
    argv, models, rest = list(argv), [], []
    while argv:
        arg = argv.pop(0)
        if arg == "--model" and argv:
            models.append(argv.pop(0))
        elif arg.startswith("--model="):
            models.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if len(models) != 1:
        raise UsageError("give the exported model once: --model=DIR")
    return models[0], rest


def run(argv):
    """``sbee attach-lm``: the recipe's arguments plus ``--model=DIR``."""
    model, argv = split_model(argv)
    hparams_file, _, _, hparams = load_recipe(argv)
    attach_language_model(model, hparams_file, hparams)
    print(f"added the recipe's LM to {model}")
    return 0


main = recipe_command_main("attach-lm", __doc__, run)

if __name__ == "__main__":
    sys.exit(main())
