"""Zero-download demo: synthesise a small corpus, train an early-exit
Conformer-CTC on the CPU, report the WER of every exit.

    sbee demo [--output-dir DIR] [--minutes N] [--json-out FILE] [--key=value ...]

Runs the recipe ``recipes/Synthetic/hparams/conformer_ee.yaml`` of the
repository (so run it from a clone) through :func:`speechbrain_ee.recipe.run`.
Training stops early if it would not fit in ``--minutes`` (whole demo,
synthesis and test included). Any further ``--key=value`` is passed to the
recipe as a yaml override (e.g. ``--num_train=1000 --number_of_epochs=5``).

Everything goes under the output folder (default ``demo_output/`` of the
clone, ignored by git): the corpus, the training run,
``demo_conformer_ctc_ee.json`` (``exit_layers``, ``wer``, ``cer`` in exit
order, ``command``, ``wall_s``, ``params``, ``machine``; also written to
``--json-out``) and ``demo_conformer_ctc_ee.png`` (WER per exit).
``--traceback`` shows the traceback of an error (``--debug`` is the
recipe's SpeechBrain debug run).
"""

import json
import pathlib
import shutil
import sys
import time

from speechbrain_ee.cli.common import CommandParser, UsageError, command_line, handle_errors, recipe_errors
from speechbrain_ee.cli.outputs import PendingFile, pending_json
from speechbrain_ee.machine import machine_info
from speechbrain_ee.plotting import format_exit_table, plot_exit_wer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE_YAML = REPO_ROOT / "recipes" / "Synthetic" / "hparams" / "conformer_ee.yaml"
RESULT_NAME = "demo_conformer_ctc_ee"
# seconds kept for the per-exit test (beam search on 200 utterances, 3 exits:
# 2 s on 2 cores) and the report
TEST_RESERVE_S = 30


def parse_args(argv):
    """``(options, recipe overrides)`` of ``sbee demo``."""
    parser = CommandParser(
        prog="sbee demo",
        description=__doc__.split("\n\n")[0],
        epilog="Other --key=value arguments are yaml overrides of the recipe.",
    )
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "demo_output"), metavar="DIR",
                        help="everything the demo writes goes here (default: %(default)s)")
    parser.add_argument("--json-out", default=None, metavar="FILE", help="also write the summary JSON here")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="time budget of the whole demo; training stops early to fit (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the training found in --output-dir instead of starting afresh")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--")]
    if bad:
        raise UsageError(f"unexpected arguments {bad} (recipe overrides look like --key=value)")
    if not args.minutes > 0:
        raise UsageError(f"--minutes must be > 0, got {args.minutes}")
    return args, overrides


def run_demo(argv):
    """Runs the demo; returns the summary dict written to the JSON file."""
    from speechbrain_ee.recipe import run

    args, overrides = parse_args(argv)
    start = time.time()
    if not RECIPE_YAML.is_file():
        raise FileNotFoundError(f"recipe not found: {RECIPE_YAML} (the demo runs from a clone of the repository)")
    output = pathlib.Path(args.output_dir).resolve()
    json_path = output / f"{RESULT_NAME}.json"
    with PendingFile(str(json_path), "--output-dir") as summary_file, pending_json(args.json_out) as copy:
        train_folder = output / "train"
        if train_folder.exists() and not args.resume:
            shutil.rmtree(train_folder)  # start afresh (the synthesised corpus is kept)
        # the recipe's epoch counter measures from its creation, a moment from now
        budget_s = max(args.minutes * 60 - TEST_RESERVE_S - (time.time() - start), 0)
        recipe_argv = [
            str(RECIPE_YAML),
            f"--output_folder={train_folder}",
            f"--data_folder={output / 'corpus'}",
            f"--time_budget_s={budget_s:.0f}",
            *overrides,
        ]
        brain = recipe_errors(run, recipe_argv)
        summary = brain.test_results["test"]
        wall_s = time.time() - start
        result = {
            "exit_layers": summary["exit_layers"],
            "wer": summary["wer"],
            "cer": summary["cer"],
            "command": command_line("demo", argv),
            "wall_s": round(wall_s, 1),
            "train_wall_s": round(brain.train_wall_s, 1),
            "epochs": brain.hparams.epoch_counter.current,
            "params": sum(p.numel() for p in brain.modules.model.parameters()),
            "machine": machine_info(),
        }
        text = json.dumps(result, indent=2)
        summary_file.write_text(text)
        if copy is not None:
            copy.write_text(text)
    png_path = output / f"{RESULT_NAME}.png"
    plot_exit_wer(
        result["exit_layers"], result["wer"], str(png_path),
        title=f"Synthetic test set (held-out voices), {result['epochs']} epochs",
    )
    print()
    print("Early-exit Conformer-CTC, synthetic corpus, test set (new voices):")
    print(format_exit_table(result["exit_layers"], result["wer"], result["cer"]))
    print(f"{result['params'] / 1e6:.2f} M parameters, {result['epochs']} epochs, "
          f"{wall_s / 60:.1f} min in all (training {brain.train_wall_s / 60:.1f} min)")
    print(f"wrote {json_path} and {png_path}")
    return result


def main(argv=None):
    """Entry point of ``sbee demo``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return handle_errors(lambda: run_demo(argv) and 0, debug="--traceback" in argv)


if __name__ == "__main__":
    sys.exit(main())
