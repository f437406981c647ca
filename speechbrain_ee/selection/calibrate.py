"""Calibration: pick a selector's threshold on a dev set and store it with the model.

    python -m speechbrain_ee.selection.calibrate --model pretrained/an4-conformer-ctc-ee \\
        --csv dev.csv --selector entropy --target-wer 12.0     # or --target-mean-exit 6

The chosen selector is written to ``<model>/selector.yaml`` (hyperpyyaml);
:class:`speechbrain_ee.inference.EarlyExitASR` then uses it by default.
"""

import argparse
import json
import os
import sys

import yaml
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.selection.selectors import SELECTORS, check_number, make_selector

CALIBRATION_FILE = "selector.yaml"


def calibrate(rows, selector, target_wer=None, target_mean_exit=None):
    """Picks an operating point of ``selector`` from sweep ``rows``
    (:func:`speechbrain_ee.selection.sweep.sweep`).

    Arguments
    ---------
    rows : list of dict
        Sweep operating points.
    selector : str
        Selector name.
    target_wer : float, optional
        Lowest mean exit whose WER (%) is at most this.
    target_mean_exit : float, optional
        Lowest WER whose mean exit layer is at most this.

    Returns
    -------
    dict
        The chosen row.

    Example
    -------
    >>> rows = [{"selector": "entropy", "parameter": t, "wer": w, "mean_exit_layer": m}
    ...         for t, w, m in [(0.0, 10.0, 12.0), (0.1, 11.0, 8.0), (0.2, 15.0, 4.0)]]
    >>> calibrate(rows, "entropy", target_wer=12)["parameter"]
    0.1
    >>> calibrate(rows, "entropy", target_mean_exit=10)["parameter"]
    0.1
    """
    if (target_wer is None) == (target_mean_exit is None):
        raise ValueError("give exactly one of target_wer and target_mean_exit")
    points = [r for r in rows if r["selector"] == selector]
    if not points:
        raise ValueError(f"no sweep point for selector {selector!r}")
    if target_wer is not None:
        target = check_number(target_wer, "target WER", low=0.0)
        ok = [r for r in points if r["wer"] <= target]
        if not ok:
            best = min(r["wer"] for r in points)
            raise ValueError(f"no {selector} threshold reaches WER {target}% (best: {best:.2f}%)")
        return min(ok, key=lambda r: (r["mean_exit_layer"], r["wer"]))
    target = check_number(target_mean_exit, "target mean exit", low=0.0)
    ok = [r for r in points if r["mean_exit_layer"] <= target]
    if not ok:
        lowest = min(r["mean_exit_layer"] for r in points)
        raise ValueError(f"no {selector} threshold has a mean exit <= {target} layers (lowest: {lowest:.2f})")
    return min(ok, key=lambda r: (r["wer"], r["mean_exit_layer"]))


def save_selector(folder, selector, info=None):
    """Writes ``selector`` (and an ``info`` mapping) to ``folder/selector.yaml``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ee.selection import EntropySelector
    >>> path = save_selector(tempfile.mkdtemp(), EntropySelector(0.02), {"wer": 9.5})
    >>> load_selector(path)
    EntropySelector(threshold=0.02)
    """
    cls = type(selector)
    args = yaml.safe_dump(selector.config(), default_flow_style=False, sort_keys=False)
    lines = [
        "# Exit selector calibrated by speechbrain_ee.selection.calibrate",
        f"selector: !new:{cls.__module__}.{cls.__name__}",
        *("    " + line for line in args.strip().splitlines()),
    ]
    if info:
        lines.append(yaml.safe_dump({"calibration": info}, sort_keys=False).strip())
    path = os.path.join(folder, CALIBRATION_FILE)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def load_selector(path):
    """The selector stored by :func:`save_selector`."""
    with open(path) as handle:
        loaded = load_hyperpyyaml(handle)
    if "selector" not in loaded:
        raise ValueError(f"{path} has no 'selector' entry")
    return loaded["selector"]


def main(argv=None):
    """Command line: sweep on a dev CSV and store the chosen selector."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported model directory")
    parser.add_argument("--csv", required=True, help="dev manifest (ID,duration,wav,spk_id,wrd)")
    parser.add_argument("--selector", required=True, choices=sorted(SELECTORS))
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-wer", type=float, help="WER (%%) to stay within")
    target.add_argument("--target-mean-exit", type=float, help="mean exit layer to stay within")
    parser.add_argument("--topk", type=int, default=10, help="N-best size of the confidence selector")
    parser.add_argument("--beam-size", type=int, default=0, help="0: greedy CTC")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--savedir", default=None, help="where SpeechBrain links the model files")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    args = parser.parse_args(argv)

    from speechbrain_ee.inference.interfaces import EarlyExitASR
    from speechbrain_ee.selection.sweep import decode_manifest, sweep

    try:
        asr = EarlyExitASR.from_hparams(args.model, savedir=args.savedir, beam_size=args.beam_size)
        keys = {"entropy": ["entropy"], "confidence": ["confidence"]}.get(args.selector, [])
        table = decode_manifest(asr, args.csv, args.batch_size, keys, topk=args.topk)
        row = calibrate(sweep(table, topk=args.topk), args.selector, args.target_wer, args.target_mean_exit)
    except (DataPreparationError, ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options = {"topk": args.topk} if args.selector == "confidence" else {}
    selector = make_selector(args.selector, row["parameter"], **options)
    info = {
        "csv": os.path.abspath(args.csv),
        "target_wer": args.target_wer,
        "target_mean_exit_layer": args.target_mean_exit,
        "decoder": repr(asr.decoder),
        **{k: row[k] for k in ("wer", "mean_exit_layer", "mean_exit_index")},
    }
    print(json.dumps({"selector": repr(selector), **info}, indent=2))
    if not args.dry_run:
        print(f"wrote {save_selector(args.model, selector, info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
