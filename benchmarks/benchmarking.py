"""What the latency benchmarks (``benchmarks/*.py``) share: their common
command-line options and how they emit their JSON result."""

import argparse
import json
import os

import torch


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


def random_training_batch(batch, seconds, num_classes, generator, first_token=0):
    """A training batch of random audio for the step benchmarks: waveforms of
    lengths spread from half to all of ``seconds / batch`` each (the AN4
    recipes' 16 s dynamic batches hold ~5 utterances of ~3 s), their relative
    lengths, random targets in ``first_token .. num_classes - 2`` (12 per
    second; the last class is left for the CTC blank) and their relative
    lengths.

    Example
    -------
    >>> wavs, wav_lens, tokens, token_lens = random_training_batch(2, 1.0, 6, torch.Generator(), 3)
    >>> wavs.shape, wav_lens.tolist(), tokens.shape, int(tokens.min()) >= 3, int(tokens.max()) <= 4
    (torch.Size([2, 8000]), [0.5, 1.0], torch.Size([2, 6]), True, True)
    """
    longest = int(16000 * seconds / batch)
    samples = torch.linspace(longest // 2, longest, batch).long()
    wavs = 0.1 * torch.randn(batch, longest, generator=generator)
    for row, count in enumerate(samples):
        wavs[row, count:] = 0.0
    n_tokens = (samples * 12 // 16000).clamp(min=1)
    tokens = torch.randint(first_token, num_classes - 1, (batch, int(n_tokens.max())), generator=generator)
    return wavs, samples / longest, tokens, n_tokens / n_tokens.max()


def training_step_parser(description, default_hparams):
    """:func:`benchmark_parser` plus what the training-step benchmarks share:
    ``--hparams`` (the model definition, ``default_hparams`` unless given)
    and ``--batch`` (utterances per batch); check with
    :func:`parse_training_step_args`."""
    parser = benchmark_parser(description, reps=20)
    parser.add_argument("--hparams", default=default_hparams)
    parser.add_argument("--batch", type=int, default=5, help="utterances per batch")
    return parser


def parse_training_step_args(parser, argv=None):
    """:func:`parse_benchmark_args`, and ``--batch`` must be >= 1."""
    args = parse_benchmark_args(parser, argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    return args


def load_training_model(hparams_path, overrides):
    """The ``model`` (in training mode), ``normalize`` and ``compute_features``
    of a shared model definition (``hparams/*.yaml``), random weights."""
    from hyperpyyaml import load_hyperpyyaml

    with open(hparams_path) as handle:
        hparams = load_hyperpyyaml(handle, overrides=overrides)
    return hparams["model"].train(), hparams["normalize"].train(), hparams["compute_features"]
