#!/usr/bin/env python3
"""CPU time of one training step of an early-exit Conformer-CTC, with
:class:`~speechbrain_ee.nnet.dropout.FastDropout` vs ``torch.nn.Dropout``.

Model: ``--hparams`` (default the AN4 recipe's CPU model,
``hparams/conformer_ctc_small.yaml`` at 4x sub-sampling as
``recipes/AN4/hparams/conformer_ee.yaml`` sets it), random weights. A step is
what :class:`~speechbrain_ee.brains.ctc.EarlyExitCTCBrain` does in training
minus data loading and augmentation: Fbank + normalisation, the six exits,
the summed CTC loss, backward, gradient clipping, AdamW. The batch is
``--batch`` random waveforms of lengths spread over ``--seconds`` (the AN4
recipe's 16 s dynamic batches hold ~5 utterances of ~3 s), with random targets
of 12 characters per second.

Each repetition runs the step once with each dropout (alternating which goes
first, on the same batch and weights state); reported: the medians and the
median of the per-repetition ratios (``fast_vs_torch``).

    python benchmarks/train_step.py --threads 2 --reps 20 --json-out results/benchmarks/train_step_dropout.json

The last line printed is the JSON result.
"""

import os
import shlex
import statistics
import sys
import time

import torch

from benchmarking import (
    emit_result,
    load_training_model,
    parse_training_step_args,
    random_training_batch,
    training_step_parser,
)
from speechbrain_ee.features import model_inputs
from speechbrain_ee.losses import early_exit_ctc_loss
from speechbrain_ee.nnet.dropout import FastDropout
from speechbrain_ee.machine import machine_info

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AN4_MODEL = {"output_neurons": 29, "cnn_channels": [64, 32]}


def parse_args(argv=None):
    parser = training_step_parser(__doc__.splitlines()[0], os.path.join(REPO_ROOT, "hparams", "conformer_ctc_small.yaml"))
    return parse_training_step_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model, normalize, fbank = load_training_model(args.hparams, AN4_MODEL)
    blank = AN4_MODEL["output_neurons"] - 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wavs, wav_lens, tokens, token_lens = random_training_batch(args.batch, args.seconds, blank + 1, generator)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    def step(fast):
        for module in dropouts:
            module.__class__ = FastDropout if fast else torch.nn.Dropout
        begin = time.perf_counter()
        log_probs, out_lens = model(*model_inputs(wavs, wav_lens, fbank, normalize))
        loss, _ = early_exit_ctc_loss(log_probs, out_lens.float() / log_probs[0].shape[1],
                                      tokens, token_lens, blank)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - begin

    for _ in range(args.warmup):
        step(True), step(False)
    times = {True: [], False: []}
    for rep in range(args.reps):
        for fast in ((True, False) if rep % 2 == 0 else (False, True)):
            times[fast].append(step(fast))
    ratios = [a / b for a, b in zip(times[True], times[False])]
    result = {
        "benchmark": "train_step_dropout",
        "model": f"{os.path.relpath(args.hparams, REPO_ROOT)}, {AN4_MODEL}, "
                 f"{sum(p.numel() for p in model.parameters())} parameters, random weights",
        "batch": args.batch,
        "audio_seconds": args.seconds,
        "dropout_modules": len(dropouts),
        "threads": args.threads,
        "reps": args.reps,
        "median_ms": {
            "fast_dropout": round(1000 * statistics.median(times[True]), 1),
            "torch_dropout": round(1000 * statistics.median(times[False]), 1),
        },
        "fast_vs_torch": round(statistics.median(ratios), 4),
        "fast_vs_torch_quartiles": [round(q, 4) for q in statistics.quantiles(ratios, n=4, method="inclusive")[::2]]
        if len(ratios) > 1 else None,
        "command": "python benchmarks/train_step.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "loadavg": [round(load, 2) for load in os.getloadavg()],
        "notes": args.note,
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
