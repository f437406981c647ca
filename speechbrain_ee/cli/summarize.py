"""Turns a finished recipe run into a ``results/*.json`` record.

    sbee summarize --exp recipes/AN4/results/conformer_ctc_ee/2024 \\
        --json-out results/an4_conformer_ctc_ee.json --command "cd recipes/AN4 && python train.py ..."

The per-exit WER/CER come from the ``exit_summary_<test>.json`` the brain wrote
at test time; the wall time is read from the run's ``log.txt`` (from the first
epoch to the end of the test, summed over resumed segments, so time spent
between a stop and its resume is not counted); the parameter count from the
experiment's saved ``hyperparams.yaml``; ``epoch_s`` gives the count, min,
median and max wall seconds of the model's epochs (training + validation),
from the same log.
"""

import datetime
import json
import os
import re
import statistics
import sys
import tempfile

from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.cli.common import command_main
from speechbrain_ee.machine import machine_info  # noqa: F401 (part of this command's API)
from speechbrain_ee.cli.outputs import PendingFile

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ - (\S+) - INFO - (.*)$")
_GOING_INTO = re.compile(r"^Going into epoch (\d+)$")
_EPOCH_STATS = re.compile(r"^epoch: (\d+),")


def stamped_messages(log_path):
    """``(time, message)`` of each INFO line of a SpeechBrain ``log.txt``
    (lines without a time stamp, such as tracebacks, are skipped)."""
    with open(log_path, errors="replace") as handle:
        for line in handle:
            match = _STAMP.match(line.strip())
            if match:
                yield datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S"), match[3]


def training_wall_seconds(log_path):
    """Seconds of training+test in a SpeechBrain ``log.txt``: each segment runs
    from "Beginning experiment!" to its last log line; segments are summed."""
    segments, start, last = [], None, None
    for stamp, message in stamped_messages(log_path):
        if "Beginning experiment!" in message:
            if start is not None:
                segments.append((start, last))
            start = stamp
        last = stamp
    if start is not None:
        segments.append((start, last))
    return sum((end - begin).total_seconds() for begin, end in segments), len(segments)


def epoch_wall_seconds(log_path):
    """Wall seconds of each model epoch in a SpeechBrain ``log.txt`` (training
    + validation + checkpoint), in log order: from "Going into epoch N" to the
    train logger's "epoch: N, ..." line. Epochs of loops that log no stats
    line (the transcript LM's) are not counted."""
    seconds, entered = [], {}
    for stamp, message in stamped_messages(log_path):
        going = _GOING_INTO.match(message)
        if going:
            entered[int(going[1])] = stamp
            continue
        stats = _EPOCH_STATS.match(message)
        if stats and int(stats[1]) in entered:
            seconds.append((stamp - entered.pop(int(stats[1]))).total_seconds())
    return seconds


def epoch_time_summary(seconds):
    """Count, min, median and max of :func:`epoch_wall_seconds` (None when empty)."""
    if not seconds:
        return None
    return {"count": len(seconds), "min": round(min(seconds)), "median": round(statistics.median(seconds)),
            "max": round(max(seconds))}


def count_parameters(exp_folder):
    """Parameters of the ``model`` in the experiment's saved hyperparams
    (for runs whose test summary predates its ``params`` field). The yaml
    is instantiated in a scratch working directory: its objects (the
    checkpointer...) create their relative folders there, not here."""
    hparams_file = os.path.abspath(os.path.join(exp_folder, "hyperparams.yaml"))
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            with open(hparams_file) as handle:
                hparams = load_hyperpyyaml(handle)
        finally:
            os.chdir(here)
    return sum(p.numel() for p in hparams["model"].parameters())


def summarize(exp_folder, command, test_name="test", notes=None):
    """The results record of one run (see the module docstring)."""
    with open(os.path.join(exp_folder, f"exit_summary_{test_name}.json")) as handle:
        summary = json.load(handle)
    log_path = os.path.join(exp_folder, "log.txt")
    wall, segments = training_wall_seconds(log_path)
    record = {
        "exit_layers": summary["exit_layers"],
        "wer": summary["wer"],
        "cer": summary["cer"],
        "test_set": test_name,
        "command": command,
        "wall_s": round(wall),
        "run_segments": segments,
        "epoch_s": epoch_time_summary(epoch_wall_seconds(log_path)),
        "params": summary.get("params") or count_parameters(exp_folder),
        "machine": machine_info(),
    }
    # the threads of the run itself (this process may use another number)
    if "torch_threads" in summary:
        record["machine"]["torch_threads"] = summary["torch_threads"]
    else:
        record["machine"].pop("torch_threads")
    if notes:
        record["notes"] = notes
    return record


def add_arguments(parser):
    """The flags of ``sbee summarize``."""
    parser.add_argument("--exp", required=True, metavar="DIR", help="the recipe's output folder")
    parser.add_argument("--json-out", required=True, metavar="FILE", help="JSON file to write")
    parser.add_argument("--command", required=True, help="the command(s) that produced the run")
    parser.add_argument("--test-name", default="test")
    parser.add_argument("--notes", default=None)


def run(args):
    """``sbee summarize``."""
    with PendingFile(args.json_out) as out:
        record = summarize(args.exp, args.command, args.test_name, args.notes)
        out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


main = command_main("summarize", __doc__, add_arguments, run)

if __name__ == "__main__":
    sys.exit(main())
