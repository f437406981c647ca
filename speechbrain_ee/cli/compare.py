"""Builds a comparison table (the paper's Table 2: early-exit vs single-exit
models, WER per encoder depth) from per-run ``results/*.json`` records.

    sbee compare --entry ctc.ee=results/an4_conformer_ctc_ee.json \\
        --entry ctc.noee=results/an4_ctc_noee12.json \\
        --decoding "CTC prefix beam 30 + LM + lexicon" --json-out results/an4_table2.json

Each ``--entry MODEL.KIND=FILE`` puts the test WER of every exit of the run
recorded in FILE (``exit_layers`` and ``wer``, as ``sbee summarize`` writes
them) under ``table[MODEL][KIND][layer]``; ``source_files`` names the file of
every cell. A record without its command, machine or wall time, or two
records for the same cell, is an error: every number of the table comes
from one committed run.
"""

import json
import os
import sys

from speechbrain_ee.cli.common import command_main
from speechbrain_ee.cli.outputs import PendingFile

REQUIRED = ("exit_layers", "wer", "command", "machine", "wall_s")


def parse_entry(text):
    """``"ctc.ee=results/x.json"`` -> ``("ctc", "ee", "results/x.json")``.

    Example
    -------
    >>> parse_entry("aed.noee=results/a.json")
    ('aed', 'noee', 'results/a.json')
    >>> parse_entry("aed=results/a.json")
    Traceback (most recent call last):
    ...
    ValueError: --entry 'aed=results/a.json': expected MODEL.KIND=FILE, e.g. ctc.ee=results/run.json
    """
    key, sep, path = text.partition("=")
    model, dot, kind = key.partition(".")
    if not (sep and dot and model and kind and path):
        raise ValueError(f"--entry {text!r}: expected MODEL.KIND=FILE, e.g. ctc.ee=results/run.json")
    return model, kind, path


def read_record(path, wer_key="wer"):
    """The per-exit test WER of a run record: ``{layer: wer}``."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON run record ({err})") from err
    missing = [key for key in (*REQUIRED[:1], wer_key, *REQUIRED[2:]) if record.get(key) is None]
    if missing:
        raise ValueError(f"{path}: not a run record, missing {', '.join(missing)}")
    layers, wers = record["exit_layers"], record[wer_key]
    if len(layers) != len(wers):
        raise ValueError(f"{path}: {len(layers)} exit_layers but {len(wers)} values of {wer_key!r}")
    return {str(layer): wer for layer, wer in zip(layers, wers)}


def build_table(entries, decoding, wer_key="wer"):
    """The table from ``[(model, kind, path)]``; see the module docstring."""
    table, sources = {}, {}
    for model, kind, path in entries:
        cells = table.setdefault(model, {}).setdefault(kind, {})
        for layer, wer in read_record(path, wer_key).items():
            name = f"{model}.{kind}.{layer}"
            if layer in cells:
                raise ValueError(f"{name} comes from both {sources[name]} and {path}")
            cells[layer] = wer
            sources[name] = path
    for kinds in table.values():
        for model_kind, cells in kinds.items():
            kinds[model_kind] = dict(sorted(cells.items(), key=lambda item: int(item[0])))
    return {**table, "decoding": decoding, "wer_key": wer_key, "source_files": sources}


def add_arguments(parser):
    """The flags of ``sbee compare``."""
    parser.add_argument("--entry", action="append", required=True, metavar="MODEL.KIND=FILE",
                        help="a run record and its place in the table (repeat)")
    parser.add_argument("--decoding", required=True, help="how every entry was decoded (stored in the table)")
    parser.add_argument("--wer-key", default="wer", help="the records' key of the per-exit test WER")
    parser.add_argument("--json-out", required=True, metavar="FILE", help="JSON file to write")


def run(args):
    """``sbee compare``."""
    entries = [parse_entry(text) for text in args.entry]
    for _, _, path in entries:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--entry: no such run record {path}")
    with PendingFile(args.json_out) as out:
        table = build_table(entries, args.decoding, args.wer_key)
        out.write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps(table, indent=2))
    return 0


main = command_main("compare", __doc__, add_arguments, run)

if __name__ == "__main__":
    sys.exit(main())
