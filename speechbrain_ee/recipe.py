"""The training/evaluation flow shared by every recipe's ``train.py``.

A recipe's yaml provides ``prepare_data`` (a ``!name:`` partial writing the
CSVs), ``train_csv``/``valid_csv``/``test_csv``, ``tokenizer_trainer`` (a
``!name:`` partial of SpeechBrain's ``SentencePiece``), ``brain_class``,
``modules``, ``opt_class``, ``checkpointer`` and the usual SpeechBrain entries.
"""

import logging
import os
import shutil
import sys
import time

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_ee.checks import check_number
from speechbrain_ee.checkpoints import compact_state_dict, load_averaged_model, write_checksums
from speechbrain_ee.data.pipelines import load_dataset, train_loader_kwargs
from speechbrain_ee.decoding import write_lexicon
from speechbrain_ee.training_checks import validate_recipe_hparams
from speechbrain_ee.warm_start import PARTS, warm_start

logger = logging.getLogger(__name__)


def load_recipe(argv):
    """Parses SpeechBrain command-line arguments and loads the yaml."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    return hparams_file, run_opts, overrides, hparams


def prepare_tokenizer(hparams):
    """Loads the SentencePiece model (training it first when it is missing:
    under DDP :func:`run` trains it on the main process beforehand) and
    stores the processor in ``hparams["tokenizer"]``."""
    tokenizer = hparams["tokenizer_trainer"]()
    hparams["tokenizer"] = tokenizer.sp
    vocab = tokenizer.sp.get_piece_size()
    if vocab != hparams["vocab_size"]:
        raise ValueError(
            f"tokenizer has {vocab} pieces but the yaml says vocab_size: {hparams['vocab_size']}"
        )
    return tokenizer.sp


def build_datasets(hparams):
    """Train/valid/test datasets from the manifests named in the yaml."""
    common = dict(
        tokenizer=hparams["tokenizer"],
        sample_rate=hparams["sample_rate"],
        min_samples=hparams.get("min_audio_samples", 400),
        bos_index=hparams.get("bos_index"),
        eos_index=hparams.get("eos_index"),
    )
    train = load_dataset(hparams["train_csv"], sorting=hparams.get("sorting"), **common)
    valid = load_dataset(hparams["valid_csv"], sorting="ascending", **common)
    tests = {
        os.path.splitext(os.path.basename(p))[0]: load_dataset(p, sorting="ascending", **common)
        for p in _as_list(hparams["test_csv"])
    }
    return train, valid, tests


def prepare_lexicon(hparams):
    """Writes the words of the training transcripts to the recipe's
    ``lexicon_file`` (if it sets one and the file is not there yet): the
    vocabulary of the N-best lexicon penalty (``oov_penalty``)."""
    path = hparams.get("lexicon_file")
    if path and not os.path.isfile(path):
        write_lexicon(hparams["train_csv"], path)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run(argv=None):
    """Data preparation, tokenizer, training, then per-exit test of the best
    checkpoint. Returns the brain (its ``test_results`` maps test set names to
    per-exit summaries)."""
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides, hparams = load_recipe(argv)
    validate_recipe_hparams(hparams)  # bad values stop here, naming the key
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    run_on_main(hparams["prepare_data"])
    run_on_main(hparams["tokenizer_trainer"])  # trained once; every process then loads it
    prepare_tokenizer(hparams)
    run_on_main(prepare_lexicon, args=[hparams])
    train, valid, tests = build_datasets(hparams)
    if "train_lm" in hparams:  # e.g. a transcript LM for the AED beam search
        hparams["train_lm"](hparams, run_opts)
    if hparams.get("init_from"):  # a checkpoint recovered by fit() replaces these weights
        warm_start(hparams["model"], hparams["init_from"], parts=hparams.get("init_parts", PARTS),
                   normalize=hparams.get("normalize"), tokenizer=hparams["tokenizer"],
                   source_tokenizer=hparams.get("init_tokenizer"))

    brain = hparams["brain_class"](
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    train_opts = train_loader_kwargs(train, hparams)
    if "lr_annealing" in hparams and hasattr(hparams["lr_annealing"], "num_training_steps"):
        steps_per_epoch = len(brain.make_dataloader(train, sb.Stage.TRAIN, **train_opts))
        accumulation = hparams.get("grad_accumulation_factor", 1)
        brain.optimizer_steps_per_epoch = steps_per_epoch // accumulation
    start = time.time()
    brain.fit(
        hparams["epoch_counter"],
        train,
        valid,
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.train_wall_s = time.time() - start
    brain.test_results = {}
    for name, data in tests.items():
        brain.test_name = name
        brain.evaluate(
            data, min_key="mean_WER", test_loader_kwargs=hparams["test_dataloader_opts"]
        )
        brain.test_results[name] = brain.exit_summary()
    if hparams.get("pretrained_folder") and sb.utils.distributed.if_main_process():
        export_run(hparams_file, hparams)
    return brain


def recipe_file(hparams_file, hparams, key):
    """A file the recipe yaml names under ``key`` (``model_yaml``: the
    architecture it includes; ``lm_yaml``: its LM), relative to the recipe
    yaml; None when the key is absent."""
    if not hparams.get(key):
        return None
    return os.path.join(os.path.dirname(os.path.abspath(hparams_file)), hparams[key])


def export_run(hparams_file, hparams):
    """:func:`export_pretrained` of a recipe's model to its ``pretrained_folder``."""
    export_pretrained(
        hparams, hparams["pretrained_folder"], recipe_file(hparams_file, hparams, "model_yaml"),
        lm_yaml=recipe_file(hparams_file, hparams, "lm_yaml"),
    )


def export_trained(argv=None):
    """Exports the best checkpoint (lowest dev ``mean_WER``; the average of
    the ``avg_checkpoints`` best when the recipe sets it) of a finished
    run to ``--pretrained_folder``, without training or testing again::

        cd recipes/AN4
        sbee export hparams/conformer_ee.yaml --data_folder=... \
            --pretrained_folder=../../pretrained/an4-conformer-ctc-ee

    Takes the arguments of the run (same yaml and overrides, so the same
    output folder)."""
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, _, _, hparams = load_recipe(argv)
    if not hparams.get("pretrained_folder"):
        raise ValueError("give --pretrained_folder=<directory to write>")
    if not os.path.isdir(hparams["save_folder"]):
        raise FileNotFoundError(f"no trained run in {hparams['save_folder']} (same yaml and overrides as the run?)")
    prepare_tokenizer(hparams)
    prepare_lexicon(hparams)
    checkpoint = hparams["checkpointer"].recover_if_possible(min_key="mean_WER")
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {hparams['save_folder']}")
    load_averaged_model(  # what the test stage of the run evaluated
        hparams["checkpointer"], hparams["model"], hparams.get("avg_checkpoints", 1), min_key="mean_WER"
    )
    if "train_lm" in hparams:  # loads the run's LM (trains one only if it is missing)
        hparams["train_lm"](hparams)
    logger.info("exporting %s", checkpoint.path)
    export_run(hparams_file, hparams)
    return checkpoint



def export_pretrained(hparams, folder, model_yaml, lm_yaml=None):
    """Writes a self-contained inference directory: ``hyperparams.yaml``,
    ``model.yaml`` (the architecture), ``model.ckpt`` (in the recipe's
    ``export_dtype``, without derived buffers: see
    :func:`speechbrain_ee.checkpoints.compact_state_dict`), ``normalize.ckpt``,
    ``tokenizer.model`` and ``checksums.sha256`` (verified when loading:
    :func:`speechbrain_ee.checkpoints.verify_export_files`); :class:`speechbrain_ee.inference.EarlyExitASR` and
    ``sbee evaluate`` load it.

    Every top-level value of the architecture file that the recipe also sets
    (``output_neurons``, ``exit_layers``, ``d_model``...) is written as an
    override of the include, so the exported model has the trained shape.
    A model with an ``export_files(folder)`` method writes its own extra
    files there and returns more overrides (raw yaml values). Models without
    ``normalize`` in the recipe (waveform models) get no features/statistics.

    Arguments
    ---------
    hparams : dict
        The loaded recipe hparams (after training).
    folder : str
        Destination directory.
    model_yaml : str
        The architecture file the recipe included.
    lm_yaml : str, optional
        The LM file the recipe included as ``lm`` (exported with its
        ``lm_model`` when ``lm_weight`` > 0).
    """
    import torch
    import yaml

    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(model_yaml, os.path.join(folder, "model.yaml"))
    dtype = export_dtype(hparams)
    torch.save(compact_state_dict(hparams["model"], dtype), os.path.join(folder, "model.ckpt"))
    if "normalize" in hparams:
        hparams["normalize"]._save(os.path.join(folder, "normalize.ckpt"))
    shutil.copyfile(
        hparams.get("tokenizer_file") or
        os.path.join(hparams["tokenizer_folder"], f"{hparams['vocab_size']}_{hparams['token_type']}.model"),
        os.path.join(folder, "tokenizer.model"),
    )
    with open(model_yaml) as handle:
        arch_keys = [k for k, v in _plain_yaml(handle).items() if not isinstance(v, dict)]
    plain = (int, float, str, bool)
    overrides = {
        k: hparams[k] for k in arch_keys
        if k in hparams and (isinstance(hparams[k], plain) or (
            isinstance(hparams[k], list) and all(isinstance(v, plain) for v in hparams[k])))
    }
    overrides["exit_layers"] = list(hparams["model"].exit_layers)
    overrides["output_neurons"] = hparams["vocab_size"] + 1
    arch_lines = [
        f"{k}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
        for k, v in overrides.items()
    ]
    # a model may need files of its own, e.g. the wav2vec2 config (raw yaml values)
    export_files = getattr(hparams["model"], "export_files", None)
    if export_files is not None:
        extra = export_files(folder)
        arch_lines = [line for line in arch_lines if line.split(":")[0] not in extra]
        arch_lines += [f"{k}: {v}" for k, v in extra.items()]
    text = PRETRAINED_TEMPLATE.format(
        vocab_size=hparams["vocab_size"], sample_rate=hparams["sample_rate"],
        arch="\n".join("    " + line for line in arch_lines),
    )
    if "normalize" not in hparams:  # waveform model (wav2vec2): no features, no input statistics
        text = "".join(
            line for line in text.splitlines(keepends=True)
            if not line.strip().startswith(("normalize:", "compute_features:"))
        )
    if hasattr(hparams["model"], "searcher_modules"):  # attention decoders: how to search
        text += attention_search_yaml(hparams)
    else:  # the CTC decoding of the recipe's test stage
        text += f"\ntest_beam_size: {int(hparams.get('test_beam_size') or 0)}\n"
    if lm_yaml and hparams.get("lm_weight", 0) > 0:
        text = add_language_model(text, hparams, folder, lm_yaml)
    if hparams.get("lexicon_file"):
        text = add_lexicon(text, hparams["lexicon_file"], hparams.get("oov_penalty"), folder)
    with open(os.path.join(folder, "hyperparams.yaml"), "w") as handle:
        handle.write(text)
    write_checksums(folder)  # the loader verifies the exported files against it
    logger.info("exported the model for inference to %s", folder)


def export_model(folder, model, tokenizer_file, model_yaml, arch=None, normalize=None, sample_rate=16000,
                 test_beam_size=0, export_dtype="float32"):
    """Exports a model trained anywhere (your own SpeechBrain project: any
    Brain, any data) as an inference directory that
    :class:`~speechbrain_ee.inference.EarlyExitASR` loads: the package's
    model (modules), its SentencePiece file and the architecture file it was
    built from.

    Arguments
    ---------
    folder : str
        Destination directory.
    model : EarlyExitCTC or EarlyExitAED
        The trained model (unwrapped from DDP).
    tokenizer_file : str
        The SentencePiece ``.model`` file (the blank is the class after its pieces).
    model_yaml : str
        An architecture file defining ``compute_features``, ``normalize``
        and ``model`` (e.g. ``hparams/conformer_ctc_small.yaml``).
    arch : dict, optional
        Values of that file's top-level keys the model was built with
        (``d_model``, ``num_layers``, ``exit_layers``...).
    normalize : InputNormalization, optional
        The trained input statistics (filterbank models).
    sample_rate : int
        Of the audio the model was trained on.
    test_beam_size : int
        The CTC decoding the exported model uses by default (0: greedy).
    export_dtype : str
        ``float32`` or ``float16`` weights.
    """
    import sentencepiece

    vocab_size = sentencepiece.SentencePieceProcessor(model_file=tokenizer_file).get_piece_size()
    hparams = {**(arch or {}), "model": model, "tokenizer_file": tokenizer_file, "vocab_size": vocab_size,
               "sample_rate": sample_rate, "test_beam_size": test_beam_size, "export_dtype": export_dtype}
    if normalize is not None:
        hparams["normalize"] = normalize
    export_pretrained(hparams, folder, model_yaml)
    return folder


def add_lexicon(text, lexicon_file, oov_penalty, folder):
    """Copies ``lexicon_file`` to ``folder/lexicon.txt`` and adds
    ``oov_penalty`` and ``lexicon_file`` to the exported ``hyperparams.yaml``
    text (returned)."""
    shutil.copyfile(lexicon_file, os.path.join(folder, "lexicon.txt"))
    section = (f"oov_penalty: {float(oov_penalty or 0.0)}\n"
               "lexicon_file: !ref <pretrained_path>/lexicon.txt\n\n")
    return text.replace("pretrainer: !new:", section + "pretrainer: !new:", 1)


def has_language_model(text):
    """Whether an exported ``hyperparams.yaml`` (its text) has an LM: every
    export with one sets ``lm_weight`` (:func:`add_language_model`).

    Example
    -------
    >>> has_language_model("vocab_size: 28" + chr(10) + "lm_weight: 0.3"), has_language_model("vocab_size: 28")
    (True, False)
    """
    return "\nlm_weight:" in "\n" + text


def has_lexicon(text):
    """Whether an exported ``hyperparams.yaml`` (its text) has a lexicon
    (:func:`add_lexicon` sets ``lexicon_file``).

    Example
    -------
    >>> has_lexicon("oov_penalty: 4.0" + chr(10) + "lexicon_file: x"), has_lexicon("vocab_size: 28")
    (True, False)
    """
    return "\nlexicon_file:" in "\n" + text


def rescoring_overrides(model_dir, lm_weight=None, oov_penalty=None):
    """Hyperparameter overrides (for ``evaluate`` and ``curves``) giving the model's LM ``lm_weight`` and its
    lexicon ``oov_penalty`` (None: the exported value); a model without an
    LM (a lexicon) accepts only 0 for it."""
    path = os.path.join(model_dir, "hyperparams.yaml")
    text = ""
    if os.path.isfile(path):
        with open(path) as handle:
            text = handle.read()
    overrides = {}
    for flag, value, present, what in (
        ("--lm-weight", lm_weight, has_language_model(text), "LM (no lm.ckpt)"),
        ("--oov-penalty", oov_penalty, has_lexicon(text), "lexicon (no lexicon.txt)"),
    ):
        if value is None:
            continue
        if present:
            overrides[flag[2:].replace("-", "_")] = check_number(flag, float(value), minimum=0)
        elif value:
            raise ValueError(f"{flag} {value}: the model in {model_dir} has no {what}")
    return overrides


def add_language_model(text, hparams, folder, lm_yaml):
    """Adds the recipe's transformer LM (``lm_model``, defined by the file
    ``lm_yaml`` and included by the recipe as ``lm``) to an export:
    ``lm.yaml``, ``lm.ckpt``, and in ``hyperparams.yaml`` ``lm_weight``,
    ``lm_model``, ``lm_scorer`` (shallow fusion in an attention model's joint
    search), the LM's sentence boundaries where the recipe sets its own
    (``lm_bos_index``/``lm_eos_index``: a CTC model, whose LM rescores the
    N-best list of its beam) and a pretrainer entry."""
    import torch

    shutil.copyfile(lm_yaml, os.path.join(folder, "lm.yaml"))
    torch.save(compact_state_dict(hparams["lm_model"], export_dtype(hparams)), os.path.join(folder, "lm.ckpt"))
    sizes = {k: v for k, v in hparams["lm"].items() if k.startswith("lm_") and isinstance(v, (int, float))}
    sizes.pop("lm_epochs", None)
    lines = [f"    {k}: {v}" for k, v in sizes.items()]
    own = "".join(f"{k}: {hparams[k]}\n" for k in ("lm_bos_index", "lm_eos_index") if k in hparams)
    section = (
        f"lm_weight: {hparams['lm_weight']}\n" + own +
        "lm: !include:lm.yaml\n"
        f"    output_neurons: {hparams['lm']['output_neurons']}\n"
        "    lm_folder: !ref <pretrained_path>\n" + "\n".join(lines) + "\n"
        "lm_model: !ref <lm[lm_model]>\n"
        "lm_scorer: !ref <lm[lm_scorer]>\n\n"
    )
    text = text.replace("pretrainer: !new:", section + "pretrainer: !new:", 1)
    text = text.replace("        tokenizer: !ref <tokenizer>\n",
                        "        tokenizer: !ref <tokenizer>\n        lm: !ref <lm[lm_model]>\n", 1)
    text = text.replace("        model: !name:speechbrain_ee.checkpoints.load_compact_state_dict\n",
                        "        model: !name:speechbrain_ee.checkpoints.load_compact_state_dict\n"
                        "        lm: !name:speechbrain_ee.checkpoints.load_compact_state_dict\n", 1)
    return text.replace("        tokenizer: !ref <pretrained_path>/tokenizer.model\n",
                        "        tokenizer: !ref <pretrained_path>/tokenizer.model\n"
                        "        lm: !ref <pretrained_path>/lm.ckpt\n", 1)


def export_dtype(hparams):
    """The torch dtype of exported weights: the recipe's ``export_dtype``
    (``float32``, the default, or ``float16``, which halves the files; the
    loaded model computes in float32 either way)."""
    import torch

    name = hparams.get("export_dtype") or "float32"
    if name not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"export_dtype must be float32, float16 or bfloat16, got {name!r}")
    return getattr(torch, name)


def attention_search_yaml(hparams):
    """The recipe's ``test_search`` (partial of
    ``S2STransformerBeamSearcher``), ``bos_index``, ``eos_index``,
    ``ctc_weight_decode`` and ``aed_decoding`` (default ``joint``) of an
    attention model, as hyperparams text: the same keys with the same
    meaning as in the recipe.

    Example
    -------
    >>> from functools import partial
    >>> from speechbrain.decoders.seq2seq import S2STransformerBeamSearcher
    >>> hp = {"test_search": partial(S2STransformerBeamSearcher, bos_index=1, eos_index=2, beam_size=4),
    ...       "bos_index": 1, "eos_index": 2, "ctc_weight_decode": 0.4}
    >>> print(attention_search_yaml(hp))  # doctest: +NORMALIZE_WHITESPACE
    <BLANKLINE>
    bos_index: 1
    eos_index: 2
    ctc_weight_decode: 0.4
    aed_decoding: joint
    test_search: !name:speechbrain.decoders.seq2seq.S2STransformerBeamSearcher
        bos_index: 1
        eos_index: 2
        beam_size: 4
    """
    search = hparams["test_search"]
    options = "".join(f"\n    {k}: {v!r}" for k, v in search.keywords.items())
    return (
        f"\nbos_index: {hparams['bos_index']}\neos_index: {hparams['eos_index']}\n"
        f"ctc_weight_decode: {hparams['ctc_weight_decode']}\n"
        f"aed_decoding: {hparams.get('aed_decoding') or 'joint'}\n"
        f"test_search: !name:{search.func.__module__}.{search.func.__qualname__}{options}\n"
    )


def _plain_yaml(handle):
    """Top-level mapping of a hyperpyyaml file, tags ignored."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(handle, Loader=_Loader) or {}


PRETRAINED_TEMPLATE = """\
# Inference hyperparameters of an early-exit model (written by speechbrain_ee).
pretrained_path: !PLACEHOLDER
sample_rate: {sample_rate}
vocab_size: {vocab_size}
blank_index: {vocab_size}

arch: !include:model.yaml
{arch}

compute_features: !ref <arch[compute_features]>
normalize: !ref <arch[normalize]>
model: !ref <arch[model]>
tokenizer: !new:sentencepiece.SentencePieceProcessor

modules:
    normalize: !ref <normalize>
    model: !ref <model>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        model: !ref <model>
        normalize: !ref <normalize>
        tokenizer: !ref <tokenizer>
    paths:
        model: !ref <pretrained_path>/model.ckpt
        normalize: !ref <pretrained_path>/normalize.ckpt
        tokenizer: !ref <pretrained_path>/tokenizer.model
    custom_hooks:  # strict key check; accepts half-precision files
        model: !name:speechbrain_ee.checkpoints.load_compact_state_dict
"""


if __name__ == "__main__":
    export_trained()
