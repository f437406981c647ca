"""Transcribe audio files with an early-exit model (``sbee-transcribe``).

    python -m speechbrain_ee.transcribe --model pretrained/an4-conformer-ctc-ee a.wav b.flac
    python -m speechbrain_ee.transcribe --model DIR --csv test.csv --selector entropy \\
        --threshold 0.01 --output hyps.jsonl

Writes one line per file (TSV: ``path, text, exit_index, exit_layer, error``;
JSON Lines when the output ends in ``.jsonl`` or with ``--format jsonl``).
``--exit`` is a 0-based exit index. Files that cannot be read are reported
(on stderr and in the ``error`` column) and the others go on; the exit status
is then 1.
"""

import argparse
import csv
import json
import logging
import sys
from contextlib import nullcontext

from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.selection.selectors import SELECTORS


def read_audio_list(csv_path):
    """Audio paths of the ``wav`` column of a CSV (a manifest or any CSV with that column)."""
    try:
        with open(csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            if "wav" not in (reader.fieldnames or []):
                raise DataPreparationError(f"{csv_path} has no 'wav' column (columns: {reader.fieldnames})")
            paths = [row["wav"] for row in reader]
    except OSError as err:
        raise DataPreparationError(f"cannot read {csv_path}: {err}") from err
    if not paths:
        raise DataPreparationError(f"{csv_path} lists no audio file")
    return paths


def write_results(results, handle, fmt):
    """One line per :class:`~speechbrain_ee.inference.Transcription`."""
    fields = ("path", "text", "exit_index", "layers", "error")
    if fmt == "tsv":
        handle.write("path\ttext\texit_index\texit_layer\terror\n")
    for item in results:
        values = {k: getattr(item, k) for k in fields}
        if fmt == "jsonl":
            values["exit_layer"] = values.pop("layers")
            handle.write(json.dumps(values) + "\n")
        else:
            handle.write("\t".join("" if values[k] is None else str(values[k]) for k in fields) + "\n")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="audio files (any rate / channel count)")
    parser.add_argument("--model", required=True, help="exported model directory")
    parser.add_argument("--csv", help="CSV with a 'wav' column, instead of (or besides) files")
    parser.add_argument("--savedir", default=None, help="where SpeechBrain links the model files")
    parser.add_argument("--exit", type=int, default=None, help="fixed exit (0-based index)")
    parser.add_argument("--selector", choices=sorted(SELECTORS), default=None)
    parser.add_argument("--threshold", type=float, default=None,
                        help="selector parameter (threshold, exit index, layer budget or patience)")
    parser.add_argument("--topk", type=int, default=None, help="N-best size (confidence selector)")
    parser.add_argument("--beam-size", type=int, default=None, help="0: greedy CTC (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", default=None, help="output file (default: stdout)")
    parser.add_argument("--format", choices=("tsv", "jsonl"), default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from speechbrain_ee.inference.interfaces import EarlyExitASR

    fmt = args.format or ("jsonl" if args.output and args.output.endswith(".jsonl") else "tsv")
    options = {"topk": args.topk} if args.topk is not None else {}
    try:
        paths = list(args.files) + (read_audio_list(args.csv) if args.csv else [])
        if not paths:
            raise ValueError("no audio: give files and/or --csv")
        if args.topk is not None and args.selector != "confidence":
            raise ValueError("--topk only applies to --selector confidence")
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        asr = EarlyExitASR.from_hparams(args.model, savedir=args.savedir, beam_size=args.beam_size,
                                        run_opts={"device": args.device})
        asr.resolve_selector(args.exit, args.selector, args.threshold, **options)
        results = asr.recognize_files(
            paths, args.batch_size, args.exit, args.selector, args.threshold,
            progress=len(paths) > 1 and not args.no_progress, **options,
        )
    except (DataPreparationError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with (open(args.output, "w") if args.output else nullcontext(sys.stdout)) as handle:
        write_results(results, handle, fmt)
    failed = [r for r in results if r.error]
    for item in failed:
        print(f"error: {item.error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(results)} files could not be transcribed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
