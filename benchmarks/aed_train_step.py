#!/usr/bin/env python3
"""CPU time of one training step of the early-exit Conformer-AED with every
exit's decoder vs only k of them (``decoder_exits_per_step``).

Model: ``--hparams`` (default the AN4 recipe's CPU model,
``hparams/conformer_aed_small.yaml`` at 4x sub-sampling with 30 characters +
blank, as ``recipes/AN4/hparams/conformer_aed_ee.yaml`` sets it), random
weights. A step is what :class:`~speechbrain_ee.brains.aed.EarlyExitAEDBrain`
does in training minus data loading and augmentation: Fbank + normalisation,
the six exits and their CTC heads, the decoders of the drawn exits, the joint
loss (CTC 0.3 + CE 0.7, the CE scaled by n/k), backward, gradient clipping and
the recipe's fused AdamW. The batch is ``--batch`` random waveforms spread
over ``--seconds`` with random targets of 12 characters per second.

Each repetition runs one step per ``--decoders`` value and one with all of them
(rotating which goes first, same batch); reported: the medians and, for every
k, the median of the per-repetition ratios to the step with all decoders
(``vs_all``).

    python benchmarks/aed_train_step.py --threads 2 --reps 20 --json-out results/benchmarks/aed_train_step_2thread.json

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
from speechbrain_ee.losses import early_exit_joint_loss
from speechbrain_ee.machine import machine_info

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AN4_MODEL = {"output_neurons": 31, "cnn_channels": [64, 32]}
BOS, EOS = 1, 2  # SentencePiece ids of the AN4 recipe; tokens start at 3


def parse_args(argv=None):
    parser = training_step_parser(__doc__.splitlines()[0], os.path.join(REPO_ROOT, "hparams", "conformer_aed_small.yaml"))
    parser.set_defaults(seconds=16.0)  # audio per batch: the recipe's max_batch_length
    parser.add_argument("--decoders", type=int, nargs="+", default=[3, 2],
                        help="decoders run per step (k), each timed against all of them")
    return parse_training_step_args(parser, argv)


def decoder_targets(tokens, token_lens):
    """``tokens_bos``, ``tokens_eos`` and the latter's relative lengths."""
    batch, length = tokens.shape
    counts = torch.round(token_lens * length).long()
    tokens_bos = torch.cat([torch.full((batch, 1), BOS), tokens], dim=1)
    tokens_eos = torch.cat([tokens, torch.zeros(batch, 1, dtype=torch.long)], dim=1)
    tokens_eos[torch.arange(batch), counts] = EOS
    return tokens_bos, tokens_eos, (counts + 1) / (length + 1)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model, normalize, fbank = load_training_model(args.hparams, AN4_MODEL)
    num_exits = len(model.exit_layers)
    if not all(1 <= k <= num_exits for k in args.decoders):
        raise SystemExit(f"--decoders must be in 1..{num_exits}, got {args.decoders}")
    blank = AN4_MODEL["output_neurons"] - 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    wavs, wav_lens, tokens, token_lens = random_training_batch(args.batch, args.seconds, blank + 1, generator,
                                                               first_token=EOS + 1)
    tokens_bos, tokens_eos, eos_lens = decoder_targets(tokens, token_lens)

    def step(count):
        exits = sorted(torch.randperm(num_exits, generator=generator)[:count].tolist())
        begin = time.perf_counter()
        feats, lengths = model_inputs(wavs, wav_lens, fbank, normalize)
        ctc, seq, out_lens = model.forward_joint(feats, lengths, tokens_bos, decoder_exits=exits)
        loss, _ = early_exit_joint_loss(ctc, seq, out_lens.float() / ctc[0].shape[1], tokens, token_lens,
                                        tokens_eos, eos_lens, blank_index=blank, pad_index=BOS)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - begin

    counts = list(dict.fromkeys([num_exits, *args.decoders]))  # all decoders first: the reference
    for _ in range(args.warmup):
        for count in counts:
            step(count)
    times = {count: [] for count in counts}
    for rep in range(args.reps):
        shift = rep % len(counts)
        for count in counts[shift:] + counts[:shift]:
            times[count].append(step(count))
    ratios = {count: [a / b for a, b in zip(times[count], times[num_exits])] for count in counts}
    result = {
        "benchmark": "aed_train_step_decoders",
        "model": f"{os.path.relpath(args.hparams, REPO_ROOT)}, {AN4_MODEL}, "
                 f"{sum(p.numel() for p in model.parameters())} parameters, random weights",
        "exits": num_exits,
        "batch": args.batch,
        "audio_seconds": args.seconds,
        "threads": args.threads,
        "reps": args.reps,
        "median_ms": {f"decoders_{count}": round(1000 * statistics.median(times[count]), 1) for count in counts},
        "vs_all": {f"decoders_{count}": round(statistics.median(ratios[count]), 4) for count in counts},
        "command": "python benchmarks/aed_train_step.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "loadavg": [round(load, 2) for load in os.getloadavg()],
        "notes": args.note,
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
