"""Exit-selection curves of a trained model: mean exit vs WER (Wright et al.
2023, Fig. 3) for every selector, with the fixed exits and the oracle.

    sbee curves --model pretrained/an4-conformer-ctc-ee \\
        --csv recipes/AN4/results/conformer_ctc_ee/2024/manifests/test.csv \\
        --output-dir results/an4_ctc_selection

decodes every exit once (``exits.json``, reusable with ``--table``), replays
every selector over a threshold grid and writes to the output folder
``curves.csv`` (all operating points), ``curves.png`` (the plot) and
``curves.json`` (per selector ``mean_exit_at_top_plus_0p5``: the lowest mean
exit layer within +0.5 absolute WER of the top exit; also to ``--json-out``).
Without decoding flags the model decodes as exported.
"""

import csv
import json
import os
import sys
import time

from speechbrain_ee.cli.arguments import (
    add_csv_argument, add_decoding_arguments, add_json_out_argument, add_model_argument, add_run_arguments,
    load_recognizer, positive_int,
)
from speechbrain_ee.cli.common import command_line, command_main
from speechbrain_ee.cli.outputs import output_dir, pending_json

STYLES = {
    "entropy": dict(color="tab:blue", marker="."),
    "confidence": dict(color="tab:orange", marker="."),
    "patience": dict(color="tab:green", marker="s"),
    "agreement": dict(color="tab:purple", marker="."),
    "oracle": dict(color="black", linestyle="--", marker=None),
}


def write_rows(rows, path):
    """All operating points as CSV."""
    fields = ["selector", "parameter", "mean_exit_layer", "mean_exit_index", "wer", "errors"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in fields})


def plot_curves(rows, table, path, title=None):
    """Mean exit layer (y) against WER (x): one line per selector, the fixed
    exits as labelled points, the oracle hull dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name in dict.fromkeys(r["selector"] for r in rows):
        points = [r for r in rows if r["selector"] == name]
        if name == "fixed":
            xs = [r["wer"] for r in points]
            ys = [r["mean_exit_layer"] for r in points]
            ax.scatter(xs, ys, color="red", zorder=3, label="fixed exit")
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            continue
        points.sort(key=lambda r: (r["mean_exit_layer"], -r["wer"]))
        ax.plot([r["wer"] for r in points], [r["mean_exit_layer"] for r in points],
                label=name, **STYLES.get(name, {}))
    ax.set_xlabel("WER (%)")
    ax.set_ylabel("mean exit (encoder layers computed)")
    ax.set_yticks(table.exit_layers)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"exit selection, {len(table.ids)} utterances")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser):
    """The flags of ``sbee curves``."""
    add_model_argument(parser, required=False)
    add_csv_argument(parser, required=False, help="test manifest (ID,duration,wav,spk_id,wrd)")
    parser.add_argument("--table", metavar="FILE", help="reuse an exits.json instead of decoding")
    parser.add_argument("--output-dir", required=True, metavar="DIR",
                        help="folder for curves.csv, curves.png, curves.json and exits.json")
    add_json_out_argument(parser, help="also write the summary JSON here")
    parser.add_argument("--topk", type=positive_int, default=10, help="N-best size K of the confidence selector")
    parser.add_argument("--no-confidence", action="store_true", help="skip the (slow) N-best confidence")
    parser.add_argument("--max-points", type=positive_int, default=100, help="thresholds per selector")
    add_decoding_arguments(parser)
    add_run_arguments(parser, batch_size=16)


def run(args, argv=None):
    """``sbee curves``."""
    from speechbrain_ee.inference.exit_table import decode_manifest
    from speechbrain_ee.selection.sweep import ExitTable, summarize, sweep

    start = time.time()
    if not args.table and not (args.model and args.csv):
        raise ValueError("give --model and --csv (or --table)")
    if args.table and args.model:
        raise ValueError("give --model and --csv, or --table, not both")
    output_dir(args.output_dir)
    outputs = {ext: os.path.join(args.output_dir, f"curves.{ext}") for ext in ("csv", "png", "json")}
    with pending_json(outputs["json"]) as summary_file, pending_json(args.json_out) as copy:
        if args.table:
            table = ExitTable.load(args.table)
            decoder = "from " + args.table
        else:
            asr = load_recognizer(args)
            keys = ["entropy"] if args.no_confidence else ["entropy", "confidence"]
            table = decode_manifest(asr, args.csv, args.batch_size, keys, topk=args.topk, progress=True)
            decoder = repr(asr.decoder)
            table.save(os.path.join(args.output_dir, "exits.json"))
        decode_s = time.time() - start
        rows = sweep(table, topk=None if args.no_confidence else args.topk, max_points=args.max_points)
        summary = summarize(table, rows)
        summary.update(
            model=args.model and os.path.abspath(args.model), csv=args.csv and os.path.abspath(args.csv),
            decoder=decoder, confidence_topk=None if "confidence" not in table.measures else args.topk,
            decode_wall_s=round(decode_s, 1), sweep_wall_s=round(time.time() - start - decode_s, 1),
            command=command_line("curves", argv),
        )
        write_rows(rows, outputs["csv"])
        plot_curves(rows, table, outputs["png"])
        text = json.dumps(summary, indent=2)
        summary_file.write_text(text)
        if copy is not None:
            copy.write_text(text)
    print(f"top exit WER {summary['top_exit_wer']:.2f}%  (exit layers {table.exit_layers})")
    for name, info in summary["selectors"].items():
        value = info["mean_exit_at_top_plus_0p5"]
        shown = "none" if value is None else f"{value:.2f} (parameter {info['parameter']:g}, WER {info['wer']:.2f})"
        print(f"{name:>10}: mean exit within +0.5 WER: {shown}")
    print(f"wrote {outputs['csv']}, {outputs['png']}, {outputs['json']}")
    return 0


def main(argv=None):
    """Entry point of ``sbee curves``; returns the exit status."""
    return command_main("curves", __doc__, add_arguments, lambda args: run(args, argv))(argv)


if __name__ == "__main__":
    sys.exit(main())
