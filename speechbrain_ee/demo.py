"""Zero-download demo: synthesise a small corpus, train an early-exit
Conformer-CTC on the CPU, report the WER of every exit.

    python -m speechbrain_ee.demo [--output DIR] [--minutes N] [--key=value ...]

Runs the recipe ``recipes/Synthetic/hparams/conformer_ee.yaml`` of the
repository (so run it from a clone) through :func:`speechbrain_ee.recipe.run`.
Training stops early if it would not fit in ``--minutes`` (whole demo,
synthesis and test included). Any further ``--key=value`` is passed to the
recipe as a yaml override (e.g. ``--num_train=1000 --number_of_epochs=5``).

Writes only under ``--output`` (default ``demo_output/``, git-ignored): the
corpus, the training run, ``demo_conformer_ctc_ee.json`` (``exit_layers``,
``wer``, ``cer`` in exit order, ``command``, ``wall_s``, ``params``,
``machine``) and ``demo_conformer_ctc_ee.png`` (WER per exit); ``--results``
puts the two summary files elsewhere. The committed reference run is
``results/demo_conformer_ctc_ee.json`` (see RESULTS.md).
"""

import argparse
import json
import pathlib
import shlex
import shutil
import sys
import time

from speechbrain_ee.plotting import format_exit_table, plot_exit_wer
from speechbrain_ee.recipe import run
from speechbrain_ee.summarize import machine_info

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPE_YAML = REPO_ROOT / "recipes" / "Synthetic" / "hparams" / "conformer_ee.yaml"
RESULT_NAME = "demo_conformer_ctc_ee"
# seconds kept for the per-exit test (beam search on 200 utterances, 3 exits:
# 2 s on 2 cores) and the report
TEST_RESERVE_S = 30


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ee.demo",
        description=__doc__.split("\n\n")[0],
        epilog="Other --key=value arguments are yaml overrides of the recipe.",
    )
    parser.add_argument("--output", default=str(REPO_ROOT / "demo_output"),
                        help="working folder: corpus, training and summary (default: %(default)s)")
    parser.add_argument("--results", default=None,
                        help="where the JSON and PNG summary go (default: the --output folder)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="time budget of the whole demo; training stops early to fit (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the training found in --output instead of starting afresh")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--")]
    if bad:
        parser.error(f"unexpected arguments {bad} (recipe overrides look like --key=value)")
    if args.results is None:
        args.results = args.output
    return args, overrides


def main(argv=None):
    """Runs the demo; returns the summary dict written to the JSON file."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, overrides = parse_args(argv)
    start = time.time()
    if not RECIPE_YAML.is_file():
        sys.exit(f"recipe not found: {RECIPE_YAML} (the demo runs from a clone of the repository)")
    output = pathlib.Path(args.output).resolve()
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
    brain = run(recipe_argv)
    summary = brain.test_results["test"]
    wall_s = time.time() - start

    result = {
        "exit_layers": summary["exit_layers"],
        "wer": summary["wer"],
        "cer": summary["cer"],
        "command": shlex.join(["python", "-m", "speechbrain_ee.demo", *argv]),
        "wall_s": round(wall_s, 1),
        "train_wall_s": round(brain.train_wall_s, 1),
        "epochs": brain.hparams.epoch_counter.current,
        "params": sum(p.numel() for p in brain.modules.model.parameters()),
        "machine": machine_info(),
    }
    results = pathlib.Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{RESULT_NAME}.json"
    with open(json_path, "w") as handle:
        json.dump(result, handle, indent=2)
    png_path = results / f"{RESULT_NAME}.png"
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


if __name__ == "__main__":
    main()
