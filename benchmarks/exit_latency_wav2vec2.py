#!/usr/bin/env python3
"""CPU latency of early-exit wav2vec2-CTC at each exit, relative to the last.

wav2vec2-base size (12 layers of 768; random weights: timing does not depend
on them) written with ``save_pretrained`` to a temporary folder and loaded
through :class:`speechbrain_ee.nnet.wav2vec2.EarlyExitWav2Vec2`. One
utterance of ``--seconds`` of audio (batch 1); a fixed exit ``k`` costs
``start`` (normalisation, CNN, projection, positional convolution) + layers
1..k + head k, what a deployment stopping at ``k`` computes. Each repetition
times every exit once, in a fresh random order (interleaved, so that drifts
of the machine hit all exits alike); medians are reported.

    python benchmarks/exit_latency_wav2vec2.py --threads 2 --reps 30 \\
        --json-out results/benchmarks/exit_latency_wav2vec2.json

The last line printed is the JSON result.
"""

import os
import random
import statistics
import sys
import tempfile
import time

import torch

from speechbrain_ee.nnet.wav2vec2 import EarlyExitWav2Vec2, save_random_wav2vec2
from benchmarking import benchmark_parser, emit_result, parse_benchmark_args
from speechbrain_ee.machine import machine_info


def parse_args(argv=None):
    parser = benchmark_parser(__doc__.splitlines()[0], reps=20)
    parser.add_argument("--exit-layers", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12])
    return parse_benchmark_args(parser, argv)


@torch.inference_mode()
def time_exit(model, wavs, lengths, exit_index):
    """Seconds to run ``start`` then the layers and head of ``exit_index``
    (None: ``start`` only)."""
    begin = time.perf_counter()
    state = model.start(wavs, lengths)
    if exit_index is not None:
        model.step(state, exit_index)
    return time.perf_counter() - begin


def measure(model, wavs, lengths, reps, warmup, seed):
    """Per-exit lists of timings (seconds); key None is the front-end alone."""
    order = [None] + list(range(model.num_exits))
    rng = random.Random(seed)
    timings = {k: [] for k in order}
    for rep in range(warmup + reps):
        rng.shuffle(order)
        for exit_index in order:
            elapsed = time_exit(model, wavs, lengths, exit_index)
            if rep >= warmup:
                timings[exit_index].append(elapsed)
    return timings


def summarize(timings, exit_layers):
    """Medians (ms) and ratios to the last exit."""
    median_ms = [1000 * statistics.median(timings[i]) for i in range(len(exit_layers))]
    front_ms = 1000 * statistics.median(timings[None])
    return {
        "exit_layers": list(exit_layers),
        "median_ms": [round(m, 2) for m in median_ms],
        "ratio_to_last_exit": [round(m / median_ms[-1], 4) for m in median_ms],
        "layer_ratio": [round(k / exit_layers[-1], 4) for k in exit_layers],
        "frontend_median_ms": round(front_ms, 2),
        "frontend_share_of_last_exit": round(front_ms / median_ms[-1], 4),
        "iqr_ms": [
            [round(1000 * q, 2) for q in statistics.quantiles(timings[i], n=4)[::2]]
            if len(timings[i]) > 1 else None
            for i in range(len(exit_layers))
        ],
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="w2v_base_random_") as folder:
        save_random_wav2vec2(folder, seed=args.seed)  # Wav2Vec2Config() = wav2vec2-base
        model = EarlyExitWav2Vec2(folder, num_classes=32, exit_layers=args.exit_layers).eval()
    generator = torch.Generator().manual_seed(args.seed)
    samples = int(args.seconds * 16000)
    wavs = 0.1 * torch.randn(1, samples, generator=generator)
    lengths = torch.tensor([samples])
    timings = measure(model, wavs, lengths, args.reps, args.warmup, args.seed)
    result = {
        "benchmark": "exit_latency_wav2vec2",
        "model": "wav2vec2-base size (12 x 768), random weights, separate exit heads",
        "parameters": sum(p.numel() for p in model.parameters()),
        "mode": "fixed exit: start + layers 1..k + head k, batch 1, torch.inference_mode",
        "audio_seconds": args.seconds,
        "frames": int(model.encoder.output_lengths(lengths)[0]),
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
        **summarize(timings, model.exit_layers),
        "command": " ".join(["python", "benchmarks/exit_latency_wav2vec2.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
