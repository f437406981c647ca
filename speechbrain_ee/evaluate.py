"""Per-exit WER/CER of a trained early-exit model on any test CSV.

    python -m speechbrain_ee.evaluate --model pretrained/an4-conformer-ctc-ee \\
        --csv test.csv [--json-out results.json] [--beam-size 10 | --greedy] [--lm-weight 0.3]

The model directory is the one ``speechbrain_ee.recipe.export_pretrained``
writes. CTC models are decoded by CTC prefix beam search (or greedily), and
an exported transcript LM rescores each exit's beam (``--lm-weight``
replaces its weight, 0 turns it off: tune it on a dev set);
attention models (``EarlyExitAED``) by the joint CTC/attention beam search
of each exit's own decoder (``--beam-size`` 0 or ``--greedy``: the exported
searcher's beam; ``--ctc-weight`` and ``--lm-weight`` replace the exported
weights; ``--decoding rescoring``: attention rescoring of the CTC prefix
beam instead). The table follows the paper's Table 2 layout: one row per exit.
"""

import argparse
import json
import logging
import os
import sys
import time
from functools import partial

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.metric_stats import ErrorRateStats

from speechbrain_ee.brains.aed import EarlyExitAEDBrain
from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.data.pipelines import load_dataset
from speechbrain_ee.inference.decoders import AED_DECODINGS
from speechbrain_ee.plotting import format_exit_table
from speechbrain_ee.recipe import rescoring_overrides

logger = logging.getLogger(__name__)


def load_model_dir(model_dir):
    """Loads ``hyperparams.yaml`` of an exported model and its parameters.

    Arguments
    ---------
    model_dir : str
        Directory with ``hyperparams.yaml``, ``model.yaml`` and checkpoints.

    Returns
    -------
    dict
        The loaded hparams, parameters in place.
    """
    hparams_path = os.path.join(model_dir, "hyperparams.yaml")
    if not os.path.isfile(hparams_path):
        raise FileNotFoundError(f"not a model directory (no hyperparams.yaml): {model_dir}")
    with open(hparams_path) as handle:
        hparams = load_hyperpyyaml(handle, {"pretrained_path": os.path.abspath(model_dir)})
    pretrainer = hparams["pretrainer"]
    pretrainer.collect_files()
    pretrainer.load_collected()
    return hparams


def evaluate(model_dir, csv_path, output_folder, beam_size=10, batch_size=16, num_threads=None,
             lm_weight=None, ctc_weight=None, oov_penalty=None, aed_decoding=None):
    """Per-exit WER/CER of an exported model on ``csv_path``; ``lm_weight``
    replaces the exported LM weight (0: decode without the LM), ``oov_penalty``
    the exported penalty per N-best word outside the lexicon (beam search)
    and, for an attention model, ``ctc_weight`` the CTC weight of the joint
    search (to tune them on a dev set) and ``aed_decoding`` its decoding
    (``joint`` or ``rescoring``, see
    :func:`speechbrain_ee.inference.decoders.attention_decoder`).

    Returns
    -------
    dict
        ``exit_layers``, ``wer``, ``cer`` (percent, exit order), ``csv``, ``wall_s``.
    """
    if num_threads:
        torch.set_num_threads(num_threads)
    start = time.time()
    os.makedirs(output_folder, exist_ok=True)
    hparams = load_model_dir(model_dir)
    hparams.update(rescoring_overrides(model_dir, lm_weight, oov_penalty))
    hparams.update(
        error_rate_computer=ErrorRateStats,
        cer_computer=lambda: ErrorRateStats(split_tokens=True),
        output_folder=output_folder,
        train_logger=sb.utils.train_logger.FileTrainLogger(
            os.path.join(output_folder, "evaluate_log.txt")
        ),
    )
    attention = "test_search" in hparams  # exported EarlyExitAED: joint CTC/attention search per exit
    if attention:
        if beam_size:
            hparams["test_search"] = partial(hparams["test_search"], beam_size=beam_size)
        if ctc_weight is not None:
            hparams["ctc_weight_decode"] = float(ctc_weight)
        if aed_decoding is not None:
            hparams["aed_decoding"] = aed_decoding
    elif ctc_weight is not None or aed_decoding is not None:
        raise ValueError("--ctc-weight and --decoding apply to attention models (EarlyExitAED) only")
    else:
        hparams["test_beam_size"] = beam_size
    dataset = load_dataset(
        csv_path, hparams["tokenizer"], sample_rate=hparams["sample_rate"], sorting="ascending",
        bos_index=hparams.get("bos_index") if attention else None,
        eos_index=hparams.get("eos_index") if attention else None,
    )
    brain_class = EarlyExitAEDBrain if attention else EarlyExitCTCBrain
    brain = brain_class(modules=hparams["modules"], hparams=hparams)
    brain.test_name = os.path.splitext(os.path.basename(csv_path))[0]
    brain.evaluate(dataset, test_loader_kwargs={"batch_size": batch_size})
    summary = brain.exit_summary()
    summary.update(csv=os.path.abspath(csv_path), wall_s=round(time.time() - start, 1))
    return summary


def main(argv=None):
    """Command-line entry point (``sbee-evaluate``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported model directory")
    parser.add_argument("--csv", required=True, help="manifest with ID,duration,wav,spk_id,wrd")
    parser.add_argument("--output", default=None, help="folder for WER files (default: a temp dir)")
    parser.add_argument("--json-out", default=None, help="write the summary JSON here")
    parser.add_argument("--beam-size", type=int, default=10)
    parser.add_argument("--greedy", action="store_true", help="greedy CTC instead of beam search")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--lm-weight", type=float, default=None,
                        help="LM weight instead of the exported one (0: no LM)")
    parser.add_argument("--oov-penalty", type=float, default=None,
                        help="beam search: penalty per N-best word outside the exported lexicon "
                             "instead of the exported one (0: none)")
    parser.add_argument("--ctc-weight", type=float, default=None,
                        help="attention models: CTC weight of the joint search instead of the exported one")
    parser.add_argument("--decoding", choices=AED_DECODINGS, default=None,
                        help="attention models: joint CTC/attention search or attention rescoring of "
                             "the CTC prefix beam, instead of the exported one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    output = args.output
    if output is None:
        import tempfile

        output = tempfile.mkdtemp(prefix="sbee_eval_")
    try:
        summary = evaluate(
            args.model, args.csv, output, beam_size=0 if args.greedy else args.beam_size,
            batch_size=args.batch_size, num_threads=args.threads, lm_weight=args.lm_weight,
            ctc_weight=args.ctc_weight, oov_penalty=args.oov_penalty, aed_decoding=args.decoding,
        )
    except (DataPreparationError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary["command"] = "python -m speechbrain_ee.evaluate " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    print(format_exit_table(summary["exit_layers"], summary["wer"], summary["cer"]))
    print(f"WER files in {output}")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
