"""Transcribe audio files with a deployment folder, without PyTorch.

    python -m speechbrain_ee.runtime an4-onnx-int8 a.wav b.flac
    python -m speechbrain_ee.runtime an4-onnx-int8 --csv test.csv --selector entropy --value 0.01
    python -m speechbrain_ee.runtime an4-onnx-int8 --csv test.csv --all-exits   # WER per exit

Prints one line per file (TSV: ``path, text, exit_index, exit_layer,
error``; JSON Lines with ``--format jsonl``). ``--exit`` is a 0-based exit
index. Files that cannot be read are reported (stderr and the ``error``
column) and the others go on; the exit status is then 1 (2 for bad options
or a bad folder). ``--all-exits`` with a CSV that has a ``wrd`` column
prints the WER of every exit as JSON instead.
"""

import argparse
import csv
import json
import sys
import time

from speechbrain_ee.runtime.evaluation import exit_word_error_rates
from speechbrain_ee.runtime.model import DeploymentError, EarlyExitRuntime, Result
from speechbrain_ee.runtime.selectors import SELECTORS


def read_csv(path, need_words=False):
    """``(wav paths, reference texts or None)`` of a CSV with a ``wav`` (and ``wrd``) column."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise DeploymentError(f"cannot read {path}: {err}") from err
    if not rows or "wav" not in rows[0]:
        raise DeploymentError(f"{path} has no 'wav' column or no row")
    if need_words and "wrd" not in rows[0]:
        raise DeploymentError(f"{path} has no 'wrd' column (needed by --all-exits)")
    return [r["wav"] for r in rows], ([r["wrd"] for r in rows] if need_words else None)


def add_arguments(parser):
    """Adds the runtime's options to ``parser``."""
    parser.add_argument("folder", help="deployment folder (written by speechbrain_ee.export)")
    parser.add_argument("files", nargs="*", help="audio files at the model's sample rate")
    parser.add_argument("--csv", help="CSV with a 'wav' column, instead of (or besides) files")
    parser.add_argument("--exit", type=int, default=None, help="fixed exit (0-based index)")
    parser.add_argument("--selector", choices=sorted(SELECTORS), default=None)
    parser.add_argument("--value", type=float, default=None,
                        help="selector parameter (threshold, exit index, layer budget or patience)")
    parser.add_argument("--beam-size", type=int, default=0, help="0: greedy CTC, else prefix beam search")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--all-exits", action="store_true", help="WER of every exit on --csv (needs 'wrd')")
    parser.add_argument("--format", choices=("tsv", "jsonl"), default="tsv")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return parser


def _write(result, fmt):
    values = {"path": result.path, "text": result.text, "exit_index": result.exit_index,
              "exit_layer": result.layer, "error": result.error}
    if fmt == "jsonl":
        print(json.dumps(values))
    else:
        print("\t".join("" if v is None else str(v) for v in values.values()))


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv)
    try:
        if args.beam_size < 0 or args.threads < 1:
            raise DeploymentError("--beam-size must be >= 0 and --threads >= 1")
        paths, refs = read_csv(args.csv, args.all_exits) if args.csv else ([], None)
        if args.all_exits and (args.files or not args.csv):
            raise DeploymentError("--all-exits takes --csv only (it needs the 'wrd' column)")
        paths = list(args.files) + paths
        if not paths:
            raise DeploymentError("no audio: give files and/or --csv")
        runtime = EarlyExitRuntime(args.folder, threads=args.threads, beam_size=args.beam_size,
                                   verify=not args.no_verify)
        runtime.resolve_selector(args.exit, args.selector, args.value)
    except (DeploymentError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start, failed = time.time(), 0
    if args.all_exits:
        try:
            hyps = [runtime.all_exits(runtime.load_audio(p)) for p in paths]
        except DeploymentError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        wers = exit_word_error_rates(hyps, refs)
        print(json.dumps({"exit_layers": runtime.exit_layers, "wer": wers, "utterances": len(paths),
                          "decoding": runtime.decoding, "wall_s": round(time.time() - start, 2)}))
        return 0
    if args.format == "tsv":
        print("path\ttext\texit_index\texit_layer\terror")
    for count, path in enumerate(paths, 1):
        try:
            result = runtime.recognize_file(path, args.exit, args.selector, args.value)
        except DeploymentError as err:
            result, failed = Result(None, None, None, str(path), str(err)), failed + 1
            print(f"error: {err}", file=sys.stderr)
        _write(result, args.format)
        if not args.no_progress and len(paths) > 1:
            print(f"\r{count}/{len(paths)} files", end="" if count < len(paths) else "\n",
                  file=sys.stderr, flush=True)
    if failed:
        print(f"{failed} of {len(paths)} files could not be transcribed", file=sys.stderr)
    return 1 if failed else 0
