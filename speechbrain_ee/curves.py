"""Exit-selection curves of a trained model: mean exit vs WER (Wright et al.
2023, Fig. 3) for every selector, with the fixed exits and the oracle.

    python -m speechbrain_ee.curves --model pretrained/an4-conformer-ctc-ee \\
        --csv recipes/AN4/results/conformer_ctc_ee/2024/manifests/test.csv \\
        --output results/an4_ctc_selection

decodes every exit once (``<output>_exits.json``, reusable with
``--table``), replays every selector over a threshold grid and writes
``<output>.csv`` (all operating points), ``<output>.png`` (the plot) and
``<output>.json`` (per selector ``mean_exit_at_top_plus_0p5``: the lowest
mean exit layer within +0.5 absolute WER of the top exit).
"""

import argparse
import csv
import json
import os
import sys
import time

from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.inference.decoders import AED_DECODINGS
from speechbrain_ee.recipe import rescoring_overrides
from speechbrain_ee.selection.sweep import ExitTable, decode_manifest, summarize, sweep

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


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="exported model directory")
    parser.add_argument("--csv", help="test manifest (ID,duration,wav,spk_id,wrd)")
    parser.add_argument("--table", help="reuse an <output>_exits.json instead of decoding")
    parser.add_argument("--output", required=True, help="output prefix, e.g. results/an4_ctc_selection")
    parser.add_argument("--topk", type=int, default=10, help="N-best size K of the confidence selector")
    parser.add_argument("--no-confidence", action="store_true", help="skip the (slow) N-best confidence")
    parser.add_argument("--beam-size", type=int, default=0, help="0: greedy CTC transcripts")
    parser.add_argument("--lm-weight", type=float, default=None,
                        help="weight of the model's LM instead of the exported one (0: no LM)")
    parser.add_argument("--oov-penalty", type=float, default=None,
                        help="penalty per N-best word outside the model's lexicon instead of the exported one (0: none)")
    parser.add_argument("--decoding", choices=AED_DECODINGS, default=None,
                        help="attention models: joint search or attention rescoring instead of the exported one")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-points", type=int, default=100, help="thresholds per selector")
    parser.add_argument("--savedir", default=None)
    args = parser.parse_args(argv)
    start = time.time()
    try:
        if args.table:
            table = ExitTable.load(args.table)
            decoder = "from " + args.table
        else:
            if not (args.model and args.csv):
                raise ValueError("give --model and --csv (or --table)")
            from speechbrain_ee.inference.interfaces import EarlyExitASR

            overrides = rescoring_overrides(args.model, args.lm_weight, args.oov_penalty)
            asr = EarlyExitASR.from_hparams(args.model, savedir=args.savedir, beam_size=args.beam_size,
                                            overrides=overrides, aed_decoding=args.decoding)
            keys = ["entropy"] if args.no_confidence else ["entropy", "confidence"]
            table = decode_manifest(asr, args.csv, args.batch_size, keys, topk=args.topk, progress=True)
            decoder = repr(asr.decoder)
    except (DataPreparationError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    decode_s = time.time() - start
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    if not args.table:
        table.save(args.output + "_exits.json")
    rows = sweep(table, topk=None if args.no_confidence else args.topk, max_points=args.max_points)
    summary = summarize(table, rows)
    summary.update(
        model=args.model and os.path.abspath(args.model), csv=args.csv and os.path.abspath(args.csv),
        decoder=decoder, confidence_topk=None if "confidence" not in table.measures else args.topk,
        decode_wall_s=round(decode_s, 1), sweep_wall_s=round(time.time() - start - decode_s, 1),
        command="python -m speechbrain_ee.curves " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    write_rows(rows, args.output + ".csv")
    plot_curves(rows, table, args.output + ".png")
    with open(args.output + ".json", "w") as handle:
        json.dump(summary, handle, indent=2)
    print(f"top exit WER {summary['top_exit_wer']:.2f}%  (exit layers {table.exit_layers})")
    for name, info in summary["selectors"].items():
        value = info["mean_exit_at_top_plus_0p5"]
        shown = "none" if value is None else f"{value:.2f} (parameter {info['parameter']:g}, WER {info['wer']:.2f})"
        print(f"{name:>10}: mean exit within +0.5 WER: {shown}")
    print(f"wrote {args.output}.csv, .png, .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
