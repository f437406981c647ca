"""Transcribe audio files with an early-exit model.

    sbee transcribe --model pretrained/an4-conformer-ctc-ee a.wav b.flac
    sbee transcribe --model DIR --csv test.csv --selector entropy \\
        --threshold 0.01 --output hyps.jsonl

Writes one line per file as soon as its batch is decoded (TSV: ``path, text,
exit_index, exit_layer, error``; JSON Lines when the output ends in
``.jsonl`` or with ``--format jsonl``); the output is opened before any work.
``--exit`` is a 0-based exit index. Files that cannot be read are reported
(on stderr and in the ``error`` column) and the others go on; the exit status
is then 1.
"""

import csv
import json
import logging
import sys

from speechbrain_ee.cli.arguments import (
    add_csv_argument, add_decoding_arguments, add_model_argument, add_output_argument, add_run_arguments,
    finite_float, load_recognizer, non_negative_int, positive_int,
)
from speechbrain_ee.cli.common import command_main
from speechbrain_ee.cli.outputs import open_output
from speechbrain_ee.data.manifest import DataPreparationError

FIELDS = ("path", "text", "exit_index", "layers", "error")


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


def write_header(handle, fmt):
    """The TSV header line (JSON Lines have none)."""
    if fmt == "tsv":
        handle.write("path\ttext\texit_index\texit_layer\terror\n")


def write_result(item, handle, fmt):
    """One line for a :class:`~speechbrain_ee.inference.Transcription`."""
    values = {k: getattr(item, k) for k in FIELDS}
    if fmt == "jsonl":
        values["exit_layer"] = values.pop("layers")
        handle.write(json.dumps(values) + "\n")
    else:
        handle.write("\t".join("" if values[k] is None else str(values[k]) for k in FIELDS) + "\n")


def write_results(results, handle, fmt):
    """Header and one line per result."""
    write_header(handle, fmt)
    for item in results:
        write_result(item, handle, fmt)


def add_arguments(parser):
    """The flags of ``sbee transcribe``."""
    from speechbrain_ee.selection.selectors import SELECTORS

    parser.add_argument("files", nargs="*", help="audio files (any rate / channel count)")
    add_model_argument(parser)
    add_csv_argument(parser, required=False, help="CSV with a 'wav' column, instead of (or besides) files")
    selection = parser.add_argument_group("exit selection (default: the model's calibrated selector)")
    selection.add_argument("--exit", type=non_negative_int, default=None, help="fixed exit (0-based index)")
    selection.add_argument("--selector", choices=sorted(SELECTORS), default=None)
    selection.add_argument("--threshold", type=finite_float, default=None,
                           help="selector parameter (threshold, exit index, layer budget or patience)")
    selection.add_argument("--topk", type=positive_int, default=None, help="N-best size (confidence selector)")
    add_decoding_arguments(parser)
    add_run_arguments(parser, batch_size=8)
    add_output_argument(parser, "output file, written as results come (default: stdout)")
    parser.add_argument("--format", choices=("tsv", "jsonl"), default=None,
                        help="default: jsonl when --output ends in .jsonl, else tsv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    """``sbee transcribe``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    fmt = args.format or ("jsonl" if args.output and args.output.endswith(".jsonl") else "tsv")
    options = {"topk": args.topk} if args.topk is not None else {}
    paths = list(args.files) + (read_audio_list(args.csv) if args.csv else [])
    if not paths:
        raise ValueError("no audio: give files and/or --csv")
    if args.topk is not None and args.selector != "confidence":
        raise ValueError("--topk only applies to --selector confidence")
    handle = open_output(args.output)  # before the model loads: an unwritable path fails at once
    failed, done = [], 0
    try:
        asr = load_recognizer(args)
        asr.resolve_selector(args.exit, args.selector, args.threshold, **options)
        write_header(handle, fmt)
        for item in asr.iter_recognize_files(
            paths, args.batch_size, args.exit, args.selector, args.threshold,
            progress=len(paths) > 1 and not args.no_progress, **options,
        ):
            write_result(item, handle, fmt)
            done += 1
            if item.error:
                failed.append(item)
    finally:
        if handle is not sys.stdout:
            handle.close()
    for item in failed:
        print(f"error: {item.error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {done} files could not be transcribed", file=sys.stderr)
    return 1 if failed else 0


main = command_main("transcribe", __doc__, add_arguments, run)

if __name__ == "__main__":
    sys.exit(main())
