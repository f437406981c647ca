#!/usr/bin/env python3
"""CPU latency of the paper-size early-exit Conformer-CTC at each exit.

Model: ``hparams/conformer_ctc_paper.yaml`` (12 layers, d256, ffn 2048,
8 heads, 4x conv front-end, exits after layers 2, 4, ..., 12), random
weights (timing does not depend on them; deeper exit heads are sharpened,
see :func:`build`), ``output_neurons`` 257. One
utterance of ``--seconds`` of audio, batch 1, ``torch.inference_mode``.

Timed tasks, interleaved round-robin (each repetition runs every task once,
starting one task later than the previous repetition, so that drifts of the
machine hit all tasks alike); medians are reported:

* ``exit k``: Fbank + InputNormalization + conv front-end
  (:func:`speechbrain_ee.features.model_inputs`, ``model.start``), the
  layers up to exit ``k`` and its head (``model.step``): what a deployment
  stopping at ``k`` computes. ``ratio_by_exit[k]`` = its median / exit 12's.
* ``dynamic``: the same front-end then
  :func:`speechbrain_ee.inference.run_dynamic` with an
  :class:`~speechbrain_ee.selection.EntropySelector` whose threshold makes
  this input stop at exit ``e`` (default: the middle exit), so the entropy
  of every exit up to ``e`` is evaluated. ``dynamic_overhead`` = its median
  / the median of ``exit e``, both timed head to head in a loop of their
  own after the round-robin one (alternating which goes first), so that
  each runs right after the other, on the same warm layers
  (``dynamic.overhead_paired``: the median of that ratio within each
  round). In the round-robin loop their predecessors differ (``exit e``
  always follows ``exit e-1``, which warmed most of its layers, the
  dynamic run follows the front-end tasks): that ratio is kept as
  ``dynamic.overhead_in_rotation``.
* ``selection_work``: what the dynamic run adds, alone: the heads and
  entropies of the exits below ``e`` on precomputed exit states
  (``dynamic.overhead_from_selection_work``: the overhead it explains).
* ``features`` (Fbank + normalisation) and ``front_end`` (the conv
  sub-sampling): the fixed cost of every exit (``fixed_cost_fraction`` of exit 12);
  ``front_end_without_inplace``: the same front-end with SpeechBrain's block
  modules instead of :func:`~speechbrain_ee.nnet.frontend.conv_block_inplace`.
* ``cpu_time``: the exit ratios, the dynamic overhead and the fixed share
  again on the process CPU time of the same runs (at ``--threads 1`` the
  work done, which a busy machine does not inflate).
* encoder stacks on one random ``(1, T, d_model)`` input, ``T`` the frames
  the front-end gives for this audio: ours (``model.encoder.layers`` with
  their relative positional embedding, as ``advance`` runs them), ours with
  the position-table cache of :class:`~speechbrain_ee.nnet.attention.FastRelPosMHAXL`
  off, ``torchaudio.models.Conformer`` of the same size, and SpeechBrain's
  own ``ConformerEncoder`` (RelPosMHAXL) of the same size.
  ``full_vs_torchaudio_conformer`` = ours / torchaudio.

    python benchmarks/exit_latency.py --threads 2 --reps 30 \\
        --json-out results/benchmarks/exit_latency_conformer_ctc.json

The last line printed is the JSON result.
"""

import os
import shlex
import statistics
import sys
import time

import torch
import torchaudio
from hyperpyyaml import load_hyperpyyaml
from speechbrain.lobes.models.transformer.Conformer import ConformerEncoder
from speechbrain.nnet.attention import RelPosEncXL

from benchmarking import benchmark_parser, emit_result, parse_benchmark_args
from speechbrain_ee.machine import machine_info
from speechbrain_ee.features import model_inputs
from speechbrain_ee.inference import run_dynamic
from speechbrain_ee.nnet.attention import FastRelPosMHAXL
from speechbrain_ee.selection import EntropySelector, mean_frame_entropy

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = benchmark_parser(__doc__.splitlines()[0], reps=30)
    parser.add_argument("--hparams", default=os.path.join(REPO_ROOT, "hparams", "conformer_ctc_paper.yaml"))
    parser.add_argument("--output-neurons", type=int, default=257, help="vocabulary + blank")
    parser.add_argument("--dynamic-exit", type=int, default=None,
                        help="0-based exit the dynamic run should stop at (default: the middle one)")
    return parse_benchmark_args(parser, argv)


def build(hparams_file, output_neurons, wavs, wav_lens):
    """Features, normalisation and model of ``hparams_file`` (random
    weights); one training-mode pass sets the global normalisation
    statistics, and the weights of exit head ``k`` (1-based) are multiplied
    by ``k`` so that, as in a trained model, deeper exits are more confident
    and an entropy threshold can stop at any exit (timings do not depend
    on the weights)."""
    with open(hparams_file) as handle:
        hparams = load_hyperpyyaml(handle, overrides={"output_neurons": output_neurons})
    normalize = hparams["normalize"].train()
    model_inputs(wavs, wav_lens, hparams["compute_features"], normalize)
    model = hparams["model"].eval()
    with torch.no_grad():  # random heads: sharpen the deeper exits, as training would
        for depth, linear in enumerate(model.heads.linears, start=1):
            linear.weight.mul_(depth)
    return hparams, normalize.eval(), model


def choose_entropy_threshold(model, feats, lengths, target_exit):
    """An entropy threshold at which this input stops at an exit as close
    as possible to ``target_exit``.

    :class:`EntropySelector` stops at the first exit whose entropy is below
    the threshold, so exit ``e`` is reachable when its entropy is below
    that of every earlier exit; the threshold is then halfway between the
    two. Returns ``(exit, threshold, entropies)``.
    """
    log_probs, out_lengths = model(feats, lengths)
    entropies = [float(mean_frame_entropy(lp, out_lengths)[0]) for lp in log_probs]
    reachable = [e for e in range(model.num_exits - 1)
                 if e == 0 or entropies[e] < min(entropies[:e])]
    exit_index = min(reachable, key=lambda e: (abs(e - target_exit), e))
    above = min(entropies[:exit_index]) if exit_index else 2 * entropies[0] + 1e-6
    return exit_index, (entropies[exit_index] + above) / 2, entropies


class EncoderStacks:
    """The encoder-layer stacks compared, on one ``(1, T, d_model)`` input."""

    def __init__(self, encoder, hparams, frames, generator):
        size = dict(d_model=hparams["d_model"], nhead=hparams["nhead"], d_ffn=hparams["d_ffn"],
                    num_layers=hparams["num_layers"], kernel_size=hparams["kernel_size"])
        if len(encoder.layers) != size["num_layers"]:
            raise ValueError(f"the encoder builds {len(encoder.layers)} of its {size['num_layers']} "
                             "layers: the last exit must be after the last layer")
        self.encoder = encoder
        self.x = torch.randn(1, frames, size["d_model"], generator=generator)
        self.padding = torch.zeros(1, frames, dtype=torch.bool)
        self.lengths = torch.tensor([frames])
        self.torchaudio = torchaudio.models.Conformer(
            input_dim=size["d_model"], num_heads=size["nhead"], ffn_dim=size["d_ffn"],
            num_layers=size["num_layers"], depthwise_conv_kernel_size=size["kernel_size"]).eval()
        self.speechbrain = ConformerEncoder(attention_type="RelPosMHAXL", dropout=hparams["dropout"],
                                            **size).eval()
        self.speechbrain_positions = RelPosEncXL(size["d_model"])
        self.fast_attention = [m for m in encoder.modules() if isinstance(m, FastRelPosMHAXL)]

    def ours(self):
        """Our layers as ``EarlyExitConformerEncoder.advance`` runs them."""
        pos_embs = self.encoder.positional_encoding(self.x)
        hidden = self.x
        for layer in self.encoder.layers:
            hidden, _ = layer(hidden, src_key_padding_mask=self.padding, pos_embs=pos_embs)
        return hidden

    def ours_without_position_cache(self):
        for module in self.fast_attention:
            module.cache_positions = False
        try:
            return self.ours()
        finally:
            for module in self.fast_attention:
                module.cache_positions = True

    def run_torchaudio(self):
        return self.torchaudio(self.x, self.lengths)[0]

    def run_speechbrain(self):
        return self.speechbrain(self.x, src_key_padding_mask=self.padding,
                                pos_embs=self.speechbrain_positions(self.x))[0]


def interleaved_timings(tasks, reps, warmup):
    """Runs every task once per repetition, round-robin (repetition ``r``
    starts at task ``r mod n``); returns, for each task, the wall-clock
    seconds of each run and the CPU seconds of this process during it
    (``time.process_time``: all threads, busy-waiting included; unlike the
    wall clock it does not count time the process waited for a core, so at
    one thread it measures the work even on a busy machine)."""
    names = list(tasks)
    timings = {name: [] for name in names}
    cpu = {name: [] for name in names}
    with torch.inference_mode():
        for rep in range(warmup + reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                begin, begin_cpu = time.perf_counter(), time.process_time()
                tasks[name]()
                elapsed, elapsed_cpu = time.perf_counter() - begin, time.process_time() - begin_cpu
                if rep >= warmup:
                    timings[name].append(elapsed)
                    cpu[name].append(elapsed_cpu)
    return timings, cpu


def quartiles_ms(values):
    """First and third quartiles in ms (None for a single value)."""
    if len(values) < 2:
        return None
    first, _, third = statistics.quantiles(values, n=4)
    return [round(1000 * first, 2), round(1000 * third, 2)]


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load_before = os.getloadavg()
    generator = torch.Generator().manual_seed(args.seed)
    samples = int(args.seconds * 16000)
    wavs = 0.1 * torch.randn(1, samples, generator=generator)
    wav_lens = torch.ones(1)
    hparams, normalize, model = build(args.hparams, args.output_neurons, wavs, wav_lens)
    fbank = hparams["compute_features"]
    exit_layers = list(model.exit_layers)

    with torch.inference_mode():
        feats, lengths = model_inputs(wavs, wav_lens, fbank, normalize)
        frames = int(model.encoder.frontend.output_lengths(lengths)[0])
        target = args.dynamic_exit if args.dynamic_exit is not None else len(exit_layers) // 2 - 1
        model.check_exit(target)
        dyn_exit, threshold, entropies = choose_entropy_threshold(model, feats, lengths, target)
        selector = EntropySelector(threshold)
        stopped = run_dynamic(model, feats, lengths, selector).exits[0]
        if stopped != dyn_exit:
            raise RuntimeError(f"entropy threshold {threshold} stops at exit {stopped}, not {dyn_exit}")
    stacks = EncoderStacks(model.encoder, hparams, frames, generator)

    def fixed_exit(exit_index):
        def run():
            state = model.start(*model_inputs(wavs, wav_lens, fbank, normalize))
            model.step(state, exit_index)
        return run

    def dynamic():
        run_dynamic(model, *model_inputs(wavs, wav_lens, fbank, normalize), selector)

    # the work a dynamic run adds to the fixed exit: head + entropy of every exit below it
    with torch.inference_mode():
        exit_states, exit_lengths = model.encoder(feats, lengths, max_exit=dyn_exit)

    def front_end_without_inplace():  # SpeechBrain's block modules, as in training
        frontend = model.encoder.frontend
        frontend.inplace_inference = False
        try:
            return model.start(feats, lengths)
        finally:
            frontend.inplace_inference = True

    def selection_work():
        for exit_index, hidden in enumerate(exit_states[:dyn_exit]):
            selector.measure(model.heads(exit_index, hidden), exit_lengths)

    tasks = {f"exit_{k}": fixed_exit(k) for k in range(len(exit_layers))}
    tasks.update({
        # the cost every exit pays before its first layer
        "features": lambda: model_inputs(wavs, wav_lens, fbank, normalize),
        "front_end": lambda: model.start(feats, lengths),
        "front_end_without_inplace": front_end_without_inplace,
        "dynamic": dynamic,
        "selection_work": selection_work,
        "stack_ours": stacks.ours,
        "stack_ours_without_position_cache": stacks.ours_without_position_cache,
        "stack_torchaudio": stacks.run_torchaudio,
        "stack_speechbrain": stacks.run_speechbrain,
    })
    timings, cpu_timings = interleaved_timings(tasks, args.reps, args.warmup)
    head_to_head = {"fixed": tasks[f"exit_{dyn_exit}"], "dynamic": dynamic}
    pair_timings, pair_cpu = interleaved_timings(head_to_head, args.reps, args.warmup)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_timings.items()}
    ms = {name: round(1000 * value, 2) for name, value in medians.items()}
    exit_ms = [medians[f"exit_{k}"] for k in range(len(exit_layers))]
    ratios = [m / exit_ms[-1] for m in exit_ms]
    cpu_exit_s = [cpu_medians[f"exit_{k}"] for k in range(len(exit_layers))]

    def fixed_share(task_medians, top_exit):
        """features + front-end / exit 12: the ratio at exit k is at least
        f + (1 - f) k / 12, so k / 12 + 0.05 needs f <= 0.05 / (1 - k / 12)."""
        return round((task_medians["features"] + task_medians["front_end"]) / top_exit, 4)

    bounds = [k / exit_layers[-1] + 0.05 for k in exit_layers]
    pair_medians = {name: statistics.median(values) for name, values in pair_timings.items()}
    overhead = pair_medians["dynamic"] / pair_medians["fixed"]
    # per repetition, dynamic / fixed exit measured within the same round (drift cancels)
    paired = statistics.median(d / f for d, f in zip(pair_timings["dynamic"], pair_timings["fixed"]))
    vs_torchaudio = medians["stack_ours"] / medians["stack_torchaudio"]
    result = {
        "benchmark": "exit_latency_conformer_ctc",
        "model": (f"{os.path.relpath(args.hparams, REPO_ROOT)}, output_neurons {args.output_neurons}, "
                  f"random weights, {sum(p.numel() for p in model.parameters())} parameters"),
        "mode": "batch 1, CPU, torch.inference_mode, medians over interleaved (round-robin) repetitions",
        "audio_seconds": args.seconds,
        "encoder_frames": frames,
        "threads": args.threads,
        "reps": args.reps,
        "warmup": args.warmup,
        "exit_layers": exit_layers,
        "ratio_by_exit": [round(r, 4) for r in ratios],
        "ratio_bound_by_exit": [round(b, 4) for b in bounds],
        "ratio_within_bound": all(r <= b for r, b in zip(ratios, bounds)),
        "median_ms_by_exit": [ms[f"exit_{k}"] for k in range(len(exit_layers))],
        "fixed_cost_ms": {"features": ms["features"], "front_end": ms["front_end"],
                          "front_end_without_inplace": ms["front_end_without_inplace"]},
        "fixed_cost_fraction": fixed_share(medians, exit_ms[-1]),
        "dynamic_overhead": round(overhead, 4),
        "dynamic": {
            "selector": repr(selector),
            "exit": dyn_exit,
            "exit_layer": exit_layers[dyn_exit],
            "entropy_by_exit": [round(e, 6) for e in entropies],
            "median_ms_dynamic": round(1000 * pair_medians["dynamic"], 2),
            "median_ms_fixed_exit": round(1000 * pair_medians["fixed"], 2),
            "within_bound": overhead <= 1.05,
            # median over repetitions of the ratio within one round
            "overhead_paired": round(paired, 4),
            # the same two tasks in the round-robin loop (other predecessors)
            "overhead_in_rotation": round(medians["dynamic"] / medians[f"exit_{dyn_exit}"], 4),
            "overhead_in_rotation_paired": round(statistics.median(
                d / f for d, f in zip(timings["dynamic"], timings[f"exit_{dyn_exit}"])), 4),
            # heads + entropies of the exits below, timed alone, and the
            # overhead they alone explain: (fixed exit + that work) / fixed exit
            "median_ms_selection_work": ms["selection_work"],
            "overhead_from_selection_work": round(
                (pair_medians["fixed"] + medians["selection_work"]) / pair_medians["fixed"], 4),
        },
        # the same ratios on this process's CPU time (see interleaved_timings)
        "cpu_time": {
            "ratio_by_exit": [round(c / cpu_exit_s[-1], 4) for c in cpu_exit_s],
            "median_ms_by_exit": [round(1000 * c, 2) for c in cpu_exit_s],
            "dynamic_overhead": round(statistics.median(pair_cpu["dynamic"]) / statistics.median(pair_cpu["fixed"]), 4),
            "dynamic_overhead_paired": round(statistics.median(
                d / f for d, f in zip(pair_cpu["dynamic"], pair_cpu["fixed"])), 4),
            "fixed_cost_fraction": fixed_share(cpu_medians, cpu_exit_s[-1]),
        },
        "full_vs_torchaudio_conformer": round(vs_torchaudio, 4),
        "full_vs_torchaudio_within_bound": vs_torchaudio <= 1.0,
        "full_vs_torchaudio_conformer_without_position_cache": round(
            medians["stack_ours_without_position_cache"] / medians["stack_torchaudio"], 4),
        "speechbrain_vs_torchaudio_conformer": round(
            medians["stack_speechbrain"] / medians["stack_torchaudio"], 4),
        "encoder_stack_median_ms": {
            "ours": ms["stack_ours"],
            "ours_without_position_cache": ms["stack_ours_without_position_cache"],
            "torchaudio_conformer": ms["stack_torchaudio"],
            "speechbrain_conformer_encoder": ms["stack_speechbrain"],
        },
        "quartiles_ms": {name: quartiles_ms(values) for name, values in timings.items()},
        "command": shlex.join([".venv/bin/python", "benchmarks/exit_latency.py",
                               *(argv if argv is not None else sys.argv[1:])]),
        "machine": {**machine_info(), "torchaudio": torchaudio.__version__},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "notes": args.note,
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
