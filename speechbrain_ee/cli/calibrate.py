"""Calibrate an exit selector on a dev set and store it with the model.

    sbee calibrate --model pretrained/an4-conformer-ctc-ee --csv dev.csv \\
        --selector entropy --target-wer 12.0     # or --target-mean-exit 6

Decodes every exit of the dev set once, sweeps the selector's threshold
(:mod:`speechbrain_ee.selection.sweep`) and writes the chosen selector to
``<model>/selector.yaml``; :class:`speechbrain_ee.inference.EarlyExitASR`
then uses it by default. ``--dry-run`` only prints the choice.
"""

import json
import os
import sys

from speechbrain_ee.cli.arguments import (
    add_csv_argument, add_decoding_arguments, add_json_out_argument, add_model_argument, add_run_arguments,
    load_recognizer, non_negative_float, positive_int,
)
from speechbrain_ee.cli.common import command_main
from speechbrain_ee.cli.outputs import pending_json


def add_arguments(parser):
    """The flags of ``sbee calibrate``."""
    from speechbrain_ee.selection.selectors import SELECTORS

    add_model_argument(parser)
    add_csv_argument(parser, help="dev manifest (ID,duration,wav,spk_id,wrd)")
    parser.add_argument("--selector", required=True, choices=sorted(SELECTORS))
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-wer", type=non_negative_float, help="WER (%%) to stay within")
    target.add_argument("--target-mean-exit", type=non_negative_float, help="mean exit layer to stay within")
    parser.add_argument("--topk", type=positive_int, default=10, help="N-best size of the confidence selector")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    add_json_out_argument(parser, help="also write the choice (selector, WER, mean exit) here")
    add_decoding_arguments(parser)
    add_run_arguments(parser, batch_size=16)


def run(args):
    """``sbee calibrate``."""
    from speechbrain_ee.inference.exit_table import decode_manifest
    from speechbrain_ee.selection.calibrate import calibrate, save_selector
    from speechbrain_ee.selection.selectors import make_selector
    from speechbrain_ee.selection.sweep import sweep

    if args.selector == "guarded":
        raise ValueError("the guarded selector is calibrated on a dev mix of clean and degraded audio: "
                         "python -m speechbrain_ee.selection.robust")
    with pending_json(args.json_out) as summary_file:
        asr = load_recognizer(args)
        keys = {"entropy": ["entropy"], "confidence": ["confidence"]}.get(args.selector, [])
        table = decode_manifest(asr, args.csv, args.batch_size, keys, topk=args.topk)
        row = calibrate(sweep(table, topk=args.topk), args.selector, args.target_wer, args.target_mean_exit)
        options = {"topk": args.topk} if args.selector == "confidence" else {}
        selector = make_selector(args.selector, row["parameter"], **options)
        info = {
            "csv": os.path.abspath(args.csv),
            "target_wer": args.target_wer,
            "target_mean_exit_layer": args.target_mean_exit,
            "decoder": repr(asr.decoder),
            **{k: row[k] for k in ("wer", "mean_exit_layer", "mean_exit_index")},
        }
        text = json.dumps({"selector": repr(selector), **info}, indent=2)
        print(text)
        if summary_file is not None:
            summary_file.write_text(text + "\n")
    if not args.dry_run:
        print(f"wrote {save_selector(args.model, selector, info)}")
    return 0


main = command_main("calibrate", __doc__, add_arguments, run)

if __name__ == "__main__":
    sys.exit(main())
