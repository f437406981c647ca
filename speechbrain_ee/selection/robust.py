"""Exit selection on degraded audio: per-exit WER of a model on clean and
degraded test sets, every selector on each, and a selector calibrated on a
dev mix of clean and degraded audio that does not exit early on input it
does not know (:class:`~speechbrain_ee.selection.selectors.GuardedAgreementSelector`).

    python -m speechbrain_ee.data.degrade --an4 ../shared/data/an4 --output /tmp/an4_degraded
    python -m speechbrain_ee.selection.robust --model pretrained/an4-conformer-ctc-ee \\
        --sets /tmp/an4_degraded --tables results/robust_an4_exits.json --output results/robust_an4_shipped.json \\
        --selector-out results/robust_an4_selector.yaml
    # another model against that record, with its long-audio benchmark
    python -m speechbrain_ee.selection.robust --model pretrained/an4-conformer-ctc-ee-robust \\
        --sets /tmp/an4_degraded --tables results/robust_an4_robust_exits.json --output results/robust_an4.json \\
        --before results/robust_an4_shipped.json --long-audio results/long_audio_robust.json

``--sets`` is the folder :mod:`speechbrain_ee.data.degrade` wrote
(``dev/<condition>.csv``, ``test/<condition>.csv``). Each set is decoded once
per exit (exit tables cached in the ``--tables`` file: a rerun only replays
the selectors); the selectors other than the model's own ``selector.yaml`` are
calibrated on dev only: the single-measure ones on clean dev to the model's
calibration target, the guarded one on the whole dev mix
(:func:`~speechbrain_ee.selection.calibrate.calibrate_on_mix`). Every
selector's WER on a set is compared with the fixed exits' WER at the same
mean depth (``gap``: > 0 is worse than simply stopping every utterance
there, :func:`~speechbrain_ee.selection.sweep.fixed_exit_wer_at`).
"""

import argparse
import json
import os
import sys
import time

import numpy

from speechbrain_ee.data.degrade import CONDITIONS, PROVENANCE_FILE
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.selection.calibrate import (
    CALIBRATION_FILE,
    calibrate,
    calibrate_on_mix,
    guarded_candidates,
    load_selector,
    mix_operating_points,
    save_selector,
)
from speechbrain_ee.selection.selectors import make_selector
from speechbrain_ee.inference.exit_table import decode_manifest
from speechbrain_ee.selection.sweep import (
    ExitTable,
    lowest_wer_within,
    operating_point,
    simulate,
    sweep,
)

#: selectors calibrated on clean dev only (the single-measure rules of the sweep)
SINGLE_MEASURE = ("entropy", "confidence", "patience", "agreement")


def read_baseline(path, utterances):
    """The results JSON of the baseline model (``--before``), checked to
    have been measured on the same conditions with as many utterances each
    (``utterances``: this run's count per condition)."""
    try:
        with open(path) as handle:
            baseline = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--before {path}: not a readable results JSON ({err})") from err
    before = baseline.get("before") or {}
    if "wer_per_exit" not in before or "utterances" not in baseline:
        raise ValueError(f"--before {path}: no 'before.wer_per_exit' / 'utterances' (not written by this command)")
    if baseline["utterances"] != utterances:
        raise ValueError(f"--before {path}: measured on other sets ({baseline['utterances']} utterances, "
                         f"here {utterances})")
    return baseline


def read_long_audio(path, model):
    """``long_audio_600s_peak_rss_gb`` and the long-file WER of a
    ``benchmarks/long_audio.py`` record of ``model`` (``--long-audio``)."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--long-audio {path}: not a readable JSON ({err})") from err
    if "longest" not in record or "long_audio_600s_peak_rss_gb" not in record:
        raise ValueError(f"--long-audio {path}: not written by benchmarks/long_audio.py")
    if os.path.basename(os.path.normpath(record.get("model", ""))) != os.path.basename(os.path.normpath(model)):
        raise ValueError(f"--long-audio {path}: measured {record.get('model')!r}, not {model!r}")
    return {
        "long_audio_600s_peak_rss_gb": record["long_audio_600s_peak_rss_gb"],
        "long_audio": {"source": path, "decoder": record.get("decoder"), "selector": record.get("selector"),
                       **record["longest"]},
        "long_audio_note": f"from {path}",
    }


def with_baseline(result, baseline):
    """The keys a run with ``--before`` adds or replaces: the baseline's
    per-exit WER as ``before``, this model's as ``after``, both models, and
    the clean top-exit change.

    Example
    -------
    >>> base = {"model": "a", "before": {"wer_per_exit": {"clean": [9.0, 8.0], "8k-band": [30.0, 24.0]}}}
    >>> new = {"model": "b", "before": {"wer_per_exit": {"clean": [9.0, 8.2], "8k-band": [12.0, 10.0]}}}
    >>> out = with_baseline(new, base)
    >>> out["after"]["wer_per_exit"]["8k-band"], out["wer_ratio_8k_band_exit12_before"], out["clean_top_exit_change"]
    ([12.0, 10.0], 3.0, 0.2)
    """
    before, after = baseline["before"], result["before"]
    clean_before, clean_after = before["wer_per_exit"]["clean"], after["wer_per_exit"]["clean"]
    band = before["wer_per_exit"].get("8k-band")
    return {
        "models": {"before": baseline.get("model"), "after": result["model"]},
        "before": before,
        "after": after,
        "after_note": "'before' is the baseline model (--before), 'after' this model; the selectors are this model's",
        "wer_ratio_8k_band_exit12_before": round(band[-1] / clean_before[-1], 3) if band and clean_before[-1] else None,
        "clean_top_exit_change": round(clean_after[-1] - clean_before[-1], 3),
    }


def table_name(split, condition, greedy=False):
    """Key of an exit table in the cache: ``<split>_<condition>[_greedy]``."""
    return f"{split}_{condition}{'_greedy' if greedy else ''}"


def load_tables(path):
    """``{name: ExitTable}`` of a cache file written by :func:`save_tables` ({} if absent).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "exits.json")
    >>> save_tables(path, {"test_clean": ExitTable(["a"], ["X"], [2], [["X"]], [[0]], [1])})
    >>> load_tables(path)["test_clean"].hypotheses
    [['X']]
    """
    if not path or not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return {name: ExitTable(**fields) for name, fields in json.load(handle).items()}


def save_tables(path, tables):
    """Writes ``{name: ExitTable}`` as one JSON file (temporary file + rename)."""
    from dataclasses import asdict

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        json.dump({name: asdict(table) for name, table in tables.items()}, handle)
    os.replace(path + ".tmp", path)


def exit_tables(asr, sets_dir, split, conditions, cache=None, greedy=False, topk=10, batch_size=16):
    """``{condition: ExitTable}`` of ``<sets_dir>/<split>/<condition>.csv``,
    read from / added to the cache file ``cache`` (:func:`table_name` keys)."""
    cached = load_tables(cache)
    tables = {}
    for condition in conditions:
        name = table_name(split, condition, greedy)
        if name in cached:
            tables[condition] = cached[name]
            continue
        if asr is None:
            raise ValueError(f"no table {name} in {cache} and no --model to decode it")
        csv_path = os.path.join(sets_dir, split, f"{condition}.csv")
        if not os.path.isfile(csv_path):
            raise DataPreparationError(f"degraded set not found: {csv_path} (make it with speechbrain_ee.data.degrade)")
        keys = ["entropy"] if greedy else ["entropy", "confidence"]
        tables[condition] = cached[name] = decode_manifest(asr, csv_path, batch_size, keys, topk=topk)
        if cache:
            save_tables(cache, cached)
    return tables


def per_exit_wer(table):
    """WER (%) of each fixed exit."""
    return [operating_point(table, numpy.full(len(table.ids), e))["wer"] for e in range(table.num_exits)]


def selector_report(selector, tables):
    """Per set: WER, mean depth, the fixed exits' WER at that depth (linear
    between exits, ``fixed_wer``, and the deepest single exit within it,
    ``best_single_exit_wer``) and the gap to the former."""
    report = {}
    for name, point in mix_operating_points(selector, tables).items():
        fixed_rows = [operating_point(tables[name], numpy.full(len(tables[name].ids), e)) | {"exit": e}
                      for e in range(tables[name].num_exits)]
        single = lowest_wer_within(fixed_rows, point["mean_exit_layer"])
        report[name] = {
            "wer": round(point["wer"], 3),
            "mean_exit_layer": round(point["mean_exit_layer"], 3),
            "fixed_wer_at_same_depth": round(point["fixed_wer"], 3),
            "gap_to_fixed": round(point["gap"], 3),
            "best_single_exit_wer_within_depth": single and round(single["wer"], 3),
        }
    return report


def calibrated_single_measure(dev_clean, target_wer, topk):
    """The single-measure selectors calibrated on clean dev (lowest mean exit
    with WER <= ``target_wer``), ``{name: selector}``."""
    rows = sweep(dev_clean, topk=topk if "confidence" in dev_clean.measures else None)
    chosen = {}
    for name in SINGLE_MEASURE:
        if not any(r["selector"] == name for r in rows):
            continue
        row = calibrate(rows, name, target_wer=target_wer)
        options = {"topk": topk} if name == "confidence" else {}
        chosen[name] = make_selector(name, row["parameter"], **options)
    return chosen


def depth_at_wer(selectors, table, wer):
    """Lowest mean exit among ``selectors`` on ``table`` whose WER is at most
    ``wer`` (None if none reaches it)."""
    points = [operating_point(table, simulate(s, table)) for s in selectors]
    ok = [p["mean_exit_layer"] for p in points if p["wer"] <= wer + 1e-9]
    return round(min(ok), 3) if ok else None


def clean_depth_comparison(shipped, guarded, test_clean, dev_tables):
    """The clean-test depth of the guarded selector against the shipped one
    at equal WER, both ways: the shipped selector's family (entropy over
    thresholds) at the guarded selector's WER, and the guarded family
    (:func:`guarded_candidates` of the dev mix) at the shipped selector's WER."""
    from speechbrain_ee.selection.selectors import EntropySelector
    from speechbrain_ee.selection.sweep import threshold_grid

    shipped_point = operating_point(test_clean, simulate(shipped, test_clean))
    guarded_point = operating_point(test_clean, simulate(guarded, test_clean))
    entropies = [v for row in test_clean.measures["entropy"] for v in row[:-1]]
    entropy_family = [EntropySelector(t) for t in threshold_grid(entropies, 200)]
    guarded_family = guarded_candidates(dev_tables)
    return {
        "shipped": {k: round(shipped_point[k], 3) for k in ("wer", "mean_exit_layer")},
        "guarded": {k: round(guarded_point[k], 3) for k in ("wer", "mean_exit_layer")},
        "entropy_depth_at_guarded_wer": depth_at_wer(entropy_family, test_clean, guarded_point["wer"]),
        "guarded_family_depth_at_shipped_wer": depth_at_wer(guarded_family, test_clean, shipped_point["wer"]),
        "note": "mean exit layers on clean test; the families sweep their parameters on test only to "
                "draw the curve (the operating points themselves are calibrated on dev)",
    }


def sets_provenance(sets_dir):
    """The command and seed :mod:`speechbrain_ee.data.degrade` recorded with the sets (None if absent)."""
    path = os.path.join(sets_dir, PROVENANCE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        info = json.load(handle)
    return {k: info.get(k) for k in ("command", "seed", "conditions")}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="exported model directory (not needed when every table is cached)")
    parser.add_argument("--sets", required=True, help="folder written by speechbrain_ee.data.degrade")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--tables", help="cache file of the exit tables (JSON; created if absent)")
    parser.add_argument("--output", required=True, help="results JSON")
    parser.add_argument("--selector-out", help="write the calibrated guarded selector here (yaml)")
    parser.add_argument("--beam-size", type=int, default=30, help="0: greedy CTC")
    parser.add_argument("--topk", type=int, default=10, help="N-best size of the confidence selector")
    parser.add_argument("--target-wer", type=float, default=None,
                        help="clean dev WER (%%) the selectors are calibrated to (default: the target "
                             "in the model's selector.yaml)")
    parser.add_argument("--max-gap", type=float, default=0.0,
                        help="guarded selector: largest WER above the fixed exits at the same depth "
                             "allowed on each degraded dev set (absolute %%)")
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy per-exit WER")
    parser.add_argument("--long-audio", metavar="FILE",
                        help="a benchmarks/long_audio.py JSON of this model: its 600 s peak RSS and WER delta are copied")
    parser.add_argument("--before", metavar="FILE",
                        help="the results JSON of this command for the baseline model on the same sets: "
                             "its per-exit WER becomes 'before', this model's 'after'")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--savedir", default=None)
    return parser


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        if "clean" not in args.conditions:
            raise ValueError("--conditions must include clean (the reference)")
        shipped_path = args.model and os.path.join(args.model, CALIBRATION_FILE)
        if not (shipped_path and os.path.isfile(shipped_path)):
            raise ValueError(f"--model must be a model directory with a {CALIBRATION_FILE}")
        shipped, calibration = load_selector(shipped_path, with_calibration=True)
        target_wer = args.target_wer if args.target_wer is not None else calibration.get("target_wer")
        if target_wer is None:
            raise ValueError("give --target-wer (the model's selector.yaml records none)")
        asr = None
        needed = [table_name(s, c) for s in ("dev", "test") for c in args.conditions]
        needed += [] if args.no_greedy else [table_name("test", c, greedy=True) for c in args.conditions]
        cached = set(needed) <= set(load_tables(args.tables))
        if not cached:
            from speechbrain_ee.inference.interfaces import EarlyExitASR

            asr = EarlyExitASR.from_hparams(args.model, savedir=args.savedir, beam_size=args.beam_size)
        dev = exit_tables(asr, args.sets, "dev", args.conditions, args.tables, topk=args.topk,
                          batch_size=args.batch_size)
        test = exit_tables(asr, args.sets, "test", args.conditions, args.tables, topk=args.topk,
                           batch_size=args.batch_size)
        greedy = None
        if not args.no_greedy:
            if asr is not None:
                asr.decoder = asr.build_decoder(0)
            greedy = exit_tables(asr, args.sets, "test", args.conditions, args.tables, greedy=True,
                                 batch_size=args.batch_size)
        decode_s = time.time() - start
        baseline = read_baseline(args.before, {c: len(t.ids) for c, t in test.items()}) if args.before else None
        long_audio = read_long_audio(args.long_audio, args.model) if args.long_audio else None
        singles = calibrated_single_measure(dev["clean"], target_wer, args.topk)
        guarded, _ = calibrate_on_mix(dev, guarded_candidates(dev), target_wer=target_wer, max_gap=args.max_gap)
    except (DataPreparationError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from speechbrain_ee.machine import machine_info

    exit_layers = test["clean"].exit_layers
    beam = {c: [round(w, 3) for w in per_exit_wer(t)] for c, t in test.items()}
    selectors = {"shipped (selector.yaml)": shipped, **singles, "guarded": guarded}
    result = {
        "model": args.model,
        "exit_layers": exit_layers,
        "sets": {c: os.path.join(args.sets, "test", f"{c}.csv") for c in args.conditions},
        "sets_made_by": sets_provenance(args.sets),
        "utterances": {c: len(t.ids) for c, t in test.items()},
        "decoder": f"CTC prefix beam search (beam {args.beam_size}) with the model's LM and lexicon",
        "before": {
            "wer_per_exit": beam,
            "wer_per_exit_greedy": greedy and {c: [round(w, 3) for w in per_exit_wer(t)] for c, t in greedy.items()},
        },
        "after": None,
        "after_note": "the robust recipe (recipes/AN4/hparams/conformer_ee_robust.yaml) is trained separately",
        "selectors": {
            name: {"selector": repr(s), "test": selector_report(s, test), "dev": selector_report(s, dev)}
            for name, s in selectors.items()
        },
        "selector_calibration": {
            "single_measure": f"clean dev, lowest mean exit with WER <= {target_wer}",
            "guarded": f"dev mix {args.conditions}: lowest clean mean exit with WER <= {target_wer} and WER "
                       f"<= fixed exits at the same depth {args.max_gap:+g} on every degraded dev set",
        },
        "clean_depth_at_equal_wer": clean_depth_comparison(shipped, guarded, test["clean"], dev),
        "wer_ratio_8k_band_exit12": None,
        "long_audio_600s_peak_rss_gb": None,
        "long_audio_note": "measured by the chunked-inference work, see results/long_audio.json",
        "decode_wall_s": round(decode_s, 1),
        "wall_s": round(time.time() - start, 1),
        "machine": machine_info(),
        "command": "python -m speechbrain_ee.selection.robust " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if "8k-band" in beam and beam["clean"][-1] > 0:  # the last exit (layer 12 of the AN4 model)
        result["wer_ratio_8k_band_exit12"] = round(beam["8k-band"][-1] / beam["clean"][-1], 3)
    if baseline is not None:
        result.update(with_baseline(result, baseline))
    if long_audio is not None:
        result.update(long_audio)
    goals = {}
    for condition in args.conditions:
        if condition == "clean":
            continue
        goals[condition] = result["selectors"]["guarded"]["test"][condition]["gap_to_fixed"] <= 1.0
    result["guarded_within_1_of_fixed_on_every_degraded_test_set"] = all(goals.values())
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)
    if args.selector_out:
        info = {"dev_mix": os.path.join(args.sets, "dev"), "conditions": args.conditions,
                "target_wer": target_wer, "max_gap": args.max_gap, "decoder": result["decoder"]}
        save_selector(os.path.dirname(os.path.abspath(args.selector_out)), guarded, info,
                      filename=os.path.basename(args.selector_out))
    for name, info in result["selectors"].items():
        cells = "  ".join(f"{c} {v['wer']:.1f}%@{v['mean_exit_layer']:.1f} ({v['gap_to_fixed']:+.1f})"
                          for c, v in info["test"].items())
        print(f"{name:>24}: {cells}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
