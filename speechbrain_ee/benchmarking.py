"""What the latency benchmarks (``benchmarks/*.py``) share: their common
command-line options and how they emit their JSON result."""

import argparse
import json
import os


def benchmark_parser(description, reps=30):
    """An ``ArgumentParser`` with the options every latency benchmark takes:
    ``--threads``, ``--reps``, ``--warmup``, ``--seconds`` (audio length),
    ``--seed``, ``--note`` and ``--json-out``; add the benchmark's own, then
    call :func:`parse_benchmark_args`.

    Example
    -------
    >>> args = parse_benchmark_args(benchmark_parser("demo"), ["--threads", "2"])
    >>> args.threads, args.reps, args.seconds
    (2, 30, 10.0)
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--reps", type=int, default=reps, help="timed repetitions of every task")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default=None, help="free text stored in the JSON (machine load...)")
    parser.add_argument("--json-out", default=None, help="also write the JSON result here")
    return parser


def parse_benchmark_args(parser, argv=None):
    """Parses and checks the common options (exits with a usage error)."""
    args = parser.parse_args(argv)
    if args.threads < 1 or args.reps < 1 or args.warmup < 0 or args.seconds <= 0:
        parser.error("--threads and --reps must be >= 1, --warmup >= 0, --seconds > 0")
    return args


def emit_result(result, json_out=None):
    """Writes ``result`` to ``json_out`` (indented; folders made) if given and
    prints it as one JSON line, the benchmark's last line of output."""
    if json_out:
        os.makedirs(os.path.dirname(os.path.abspath(json_out)), exist_ok=True)
        with open(json_out, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    print(json.dumps(result))
    return result
