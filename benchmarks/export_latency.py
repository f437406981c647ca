#!/usr/bin/env python3
"""Deployment of the shipped AN4 early-exit CTC model: PyTorch vs ONNX, fp32 vs int8.

One run measures, on the model directory ``--model`` (default
``pretrained/an4-conformer-ctc-ee``) exported by :mod:`speechbrain_ee.export.onnx`
to an fp32 and an int8 deployment folder:

* **sizes**: bytes of every file of both folders, ``size_ratio_int8``;
* **latency per exit** (median ms, batch 1, ``--seconds`` of real AN4 test
  speech concatenated, or noise without the corpus) of four variants at each
  thread count of ``--thread-counts``: PyTorch fp32 (``model_inputs`` +
  ``model.start`` + ``model.step`` to exit ``k``), PyTorch int8
  (:func:`~speechbrain_ee.export.onnx.quantize_torch_model`), ONNX fp32 and
  ONNX int8 (:class:`~speechbrain_ee.runtime.EarlyExitRuntime`: numpy fbank,
  the front-end graph and the segment graphs up to ``k``). All tasks of one
  thread count are interleaved round-robin (repetition ``r`` starts at task
  ``r mod n``). ``latency_ratio_onnx_int8_vs_torch_fp32_top`` is ONNX int8 /
  PyTorch fp32 at the top exit, at ``--threads``; ``exit_ratio_vs_top`` the
  ratio of each exit to the top exit of the same variant, checked against
  ``k/K + 0.05``;
* the **relative-position shift**: PyTorch fp32 at the top exit with
  :func:`~speechbrain_ee.nnet.attention.rel_shift_reshape` (the exportable
  shift, in use) and with the former ``as_strided`` view
  (:func:`~speechbrain_ee.nnet.attention.rel_shift_view`), interleaved with
  the others, and the largest difference of their log-posteriors; and the
  12-layer stack alone with each shift, alternated run by run
  (``rel_shift_encoder_stack``, the fair comparison);
* the runtime's **numpy filterbank** against SpeechBrain's ``Fbank``: the
  largest difference (dB) on the audio, and both times (``features_ms``);
* **peak RSS** (``ru_maxrss`` of a child process) of
  ``python -m speechbrain_ee.runtime FOLDER audio.wav`` transcribing the same
  audio, for both folders (torch is never imported there);
* **AN4 test WER per exit** (``--an4``; skipped without the corpus) of
  PyTorch fp32, PyTorch int8, ONNX fp32 and ONNX int8, greedy CTC, and of
  ONNX fp32/int8 with the runtime's CTC prefix beam search (``--beam-size``,
  no LM, no lexicon: the published table's beam 30 + LM + lexicon is not in
  the runtime), plus the count of ONNX fp32 transcripts identical to
  PyTorch fp32's at each exit (all at one thread: deterministic sums).
  ``wer_delta_int8_max`` = the largest int8 - fp32 WER difference over the
  exits (ONNX, greedy). Ablation: the int8 folder with the front-end's
  input projection quantized too (``float_frontend=False``), greedy WER.

    python benchmarks/export_latency.py --threads 2 --reps 10 --json-out results/export_onnx.json

The last line printed is the JSON result.
"""

import os

# numpy's BLAS (the runtime's mel product) on one thread: its idle worker
# threads otherwise busy-wait after each call and take a core from the next
# task of the round-robin (PyTorch at 2 threads ran ~100 ms at every exit)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import glob
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy
import soundfile
import torch

from benchmarking import benchmark_parser, emit_result, parse_benchmark_args
from speechbrain_ee.decoding import greedy_transcripts
from speechbrain_ee.checkpoints import load_model_dir
from speechbrain_ee.export.onnx import export_model_dir, quantize_torch_model
from speechbrain_ee.features import model_inputs
from speechbrain_ee.nnet import attention
from speechbrain_ee.runtime import EarlyExitRuntime
from speechbrain_ee.runtime.evaluation import exit_word_error_rates
from speechbrain_ee.machine import machine_info

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = benchmark_parser(__doc__.split("\n")[0], reps=10)
    parser.set_defaults(threads=2)
    parser.add_argument("--model", default=os.path.join(REPO, "pretrained", "an4-conformer-ctc-ee"))
    parser.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--an4", default=os.path.join(os.path.dirname(REPO), "shared", "data", "an4"),
                        help="AN4 folder (etc/, wav/) for the audio and the WER; absent: noise, no WER")
    parser.add_argument("--beam-size", type=int, default=10, help="runtime prefix beam for the beam WER")
    parser.add_argument("--max-utterances", type=int, default=None, help="first N AN4 test files (quick runs)")
    return parse_benchmark_args(parser, argv)


def an4_test_set(an4):
    """``[(wav path, reference)]`` of the AN4 test split, or [] without the corpus."""
    if not os.path.isfile(os.path.join(an4, "etc", "an4_test.transcription")):
        return []
    from speechbrain_ee.data.an4 import _read_split

    return [(u.wav, u.wrd) for u in _read_split(an4, "test")]


def test_audio(utterances, seconds, sample_rate, seed):
    """``seconds`` of AN4 test speech end to end (noise without the corpus)."""
    samples = int(seconds * sample_rate)
    if not utterances:
        return (numpy.random.default_rng(seed).standard_normal(samples) * 0.05).astype(numpy.float32)
    pieces, total = [], 0
    for path, _ in utterances:
        wav, _ = soundfile.read(path, dtype="float32")
        pieces.append(wav)
        total += len(wav)
        if total >= samples:
            break
    return numpy.concatenate(pieces)[:samples]


def torch_exit(model, hparams, wav, exit_index):
    """What a PyTorch deployment stopping at ``exit_index`` computes."""
    feats, lengths = model_inputs(wav, torch.ones(1), hparams["compute_features"], hparams["normalize"])
    state = model.start(feats, lengths)
    return model.step(state, exit_index)[1]


def onnx_exit(runtime, wav, exit_index):
    state = runtime.start(wav)
    for index in range(exit_index + 1):
        state, log_probs = runtime.step(state, index)
    return log_probs


def interleaved(tasks, reps, warmup):
    """Median seconds of each task, round-robin (see the module docstring)."""
    names = list(tasks)
    times = {name: [] for name in names}
    with torch.inference_mode():
        for rep in range(warmup + reps):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                begin = time.perf_counter()
                tasks[name]()
                if rep >= warmup:
                    times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_rss_mb(folder, wav_path, threads):
    """Peak RSS (MB) of a child process transcribing ``wav_path`` with the runtime."""
    code = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run([sys.executable, '-m', 'speechbrain_ee.runtime', sys.argv[1], sys.argv[2],"
        " '--threads', sys.argv[3]], capture_output=True, text=True)\n"
        "assert proc.returncode == 0, proc.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(proc.stdout.strip().splitlines()[-1])\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-c", code, folder, wav_path, str(threads)], capture_output=True,
                         text=True, env=env, check=True).stdout.splitlines()
    return round(int(out[0]) / 1024, 1), out[1]


def paired_shift_timing(model, wav_frames, reps, warmup):
    """Median ms of the encoder's layer stack on ``(1, T, d)`` with the
    exportable shift and with the former strided view, alternated run by run
    (which goes first alternates too), and the median of their ratio."""
    encoder = model.encoder
    x = torch.randn(1, wav_frames, encoder.layers[0].mha_layer.embed_dim)
    pos = encoder.positional_encoding(x)
    reshape, strided = attention.rel_shift_reshape, (lambda s, q=None: attention.rel_shift_view(s, q))

    def stack():
        hidden = x
        for layer in encoder.layers:
            hidden, _ = layer(hidden, src_key_padding_mask=None, pos_embs=pos)

    times = {"reshape": [], "strided_view": []}
    try:
        with torch.inference_mode():
            for rep in range(warmup + reps):
                order = ["reshape", "strided_view"] if rep % 2 else ["strided_view", "reshape"]
                for name in order:
                    attention.rel_shift_reshape = reshape if name == "reshape" else strided
                    begin = time.perf_counter()
                    stack()
                    if rep >= warmup:
                        times[name].append(time.perf_counter() - begin)
    finally:
        attention.rel_shift_reshape = reshape
    return {
        "frames": wav_frames,
        "stack_ms_reshape": round(1000 * statistics.median(times["reshape"]), 2),
        "stack_ms_strided_view": round(1000 * statistics.median(times["strided_view"]), 2),
        "reshape_vs_strided_paired": round(statistics.median(
            a / b for a, b in zip(times["reshape"], times["strided_view"])), 4),
    }


def progress(message):
    print(f"[export_latency] {message}", file=sys.stderr, flush=True)


def folder_sizes(folder):
    return {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


def torch_transcripts(model, hparams, wav):
    with torch.inference_mode():
        feats, lengths = model_inputs(torch.from_numpy(wav)[None], torch.ones(1), hparams["compute_features"],
                                      hparams["normalize"])
        log_probs, _ = model(feats, lengths)
    return [" ".join(greedy_transcripts(lp, torch.ones(1), hparams["blank_index"], hparams["tokenizer"])[0])
            for lp in log_probs]


def main(argv=None):
    args = parse_args(argv)
    started, load_before = time.time(), os.getloadavg()
    hparams = load_model_dir(args.model)
    model = hparams["model"].eval()
    hparams["normalize"].eval()
    model_int8 = quantize_torch_model(model)
    exit_layers = list(model.exit_layers)
    top = len(exit_layers) - 1
    utterances = an4_test_set(args.an4)
    if args.max_utterances:
        utterances = utterances[: args.max_utterances]
    work = tempfile.mkdtemp(prefix="sbee-export-")
    folders = {"fp32": os.path.join(work, "fp32"), "int8": os.path.join(work, "int8")}
    export_s = {}
    for name, folder in folders.items():
        begin = time.time()
        export_model_dir(args.model, folder, int8=name == "int8")
        export_s[name] = round(time.time() - begin, 2)
    # ablation (WER only): the front-end's input projection in int8 too
    int8_frontend_folder = os.path.join(work, "int8_frontend")
    export_model_dir(args.model, int8_frontend_folder, int8=True, float_frontend=False)
    sizes = {name: folder_sizes(folder) for name, folder in folders.items()}
    totals = {name: sum(s.values()) for name, s in sizes.items()}

    wav = test_audio(utterances, args.seconds, hparams["sample_rate"], args.seed)
    wav_path = os.path.join(work, "audio.wav")
    soundfile.write(wav_path, wav, hparams["sample_rate"])
    wav_torch = torch.from_numpy(wav)[None]

    # the exportable shift against the former strided view: same outputs?
    with torch.inference_mode():
        new = torch_exit(model, hparams, wav_torch, top)
        attention.rel_shift_reshape, saved = (lambda s, q=None: attention.rel_shift_view(s, q)), attention.rel_shift_reshape
        old = torch_exit(model, hparams, wav_torch, top)
        attention.rel_shift_reshape = saved
    shift_max_abs_diff = float((new - old).abs().max())

    with torch.inference_mode():
        fbank_diff = float(numpy.abs(EarlyExitRuntime(folders["fp32"]).fbank(wav)
                                     - hparams["compute_features"](wav_torch)[0].numpy()).max())

    latency = {}
    for threads in args.thread_counts:
        progress(f"latency at {threads} thread(s)")
        torch.set_num_threads(threads)
        runtimes = {name: EarlyExitRuntime(folder, threads=threads) for name, folder in folders.items()}
        tasks = {}
        for k in range(len(exit_layers)):
            tasks[f"torch_fp32/{k}"] = lambda k=k: torch_exit(model, hparams, wav_torch, k)
            tasks[f"torch_int8/{k}"] = lambda k=k: torch_exit(model_int8, hparams, wav_torch, k)
            tasks[f"onnx_fp32/{k}"] = lambda k=k: onnx_exit(runtimes["fp32"], wav, k)
            tasks[f"onnx_int8/{k}"] = lambda k=k: onnx_exit(runtimes["int8"], wav, k)

        def strided_shift_top():
            attention.rel_shift_reshape = lambda s, q=None: attention.rel_shift_view(s, q)
            try:
                return torch_exit(model, hparams, wav_torch, top)
            finally:
                attention.rel_shift_reshape = saved

        tasks["torch_fp32_strided_shift/top"] = strided_shift_top
        tasks["features/speechbrain"] = lambda: hparams["compute_features"](wav_torch)
        tasks["features/numpy"] = lambda: runtimes["fp32"].fbank(wav)
        medians = interleaved(tasks, args.reps, args.warmup)
        table = {}
        for variant in ("torch_fp32", "torch_int8", "onnx_fp32", "onnx_int8"):
            ms = [round(1000 * medians[f"{variant}/{k}"], 2) for k in range(len(exit_layers))]
            ratios = [round(m / ms[-1], 4) for m in ms]
            table[variant] = {
                "median_ms_by_exit": ms,
                "exit_ratio_vs_top": ratios,
                "exit_ratios_within_k_over_K_plus_0.05": all(
                    r <= layer / exit_layers[-1] + 0.05 for r, layer in zip(ratios, exit_layers)),
            }
        table["ratio_onnx_int8_vs_torch_fp32_by_exit"] = [
            round(a / b, 4) for a, b in zip(table["onnx_int8"]["median_ms_by_exit"],
                                            table["torch_fp32"]["median_ms_by_exit"])]
        table["ratio_onnx_fp32_vs_torch_fp32_by_exit"] = [
            round(a / b, 4) for a, b in zip(table["onnx_fp32"]["median_ms_by_exit"],
                                            table["torch_fp32"]["median_ms_by_exit"])]
        table["torch_int8_vs_torch_fp32_by_exit"] = [
            round(a / b, 4) for a, b in zip(table["torch_int8"]["median_ms_by_exit"],
                                            table["torch_fp32"]["median_ms_by_exit"])]
        table["rel_shift_encoder_stack"] = paired_shift_timing(
            model, new.shape[1], max(2 * args.reps, 20), args.warmup)
        table["rel_shift"] = {
            "top_exit_ms_reshape": table["torch_fp32"]["median_ms_by_exit"][-1],
            "top_exit_ms_strided_view": round(1000 * medians["torch_fp32_strided_shift/top"], 2),
            "reshape_vs_strided": round(medians[f"torch_fp32/{top}"] / medians["torch_fp32_strided_shift/top"], 4),
        }
        table["features_ms"] = {
            "speechbrain_fbank": round(1000 * medians["features/speechbrain"], 2),
            "runtime_numpy_fbank": round(1000 * medians["features/numpy"], 2),
        }
        latency[str(threads)] = table
    main_table = latency[str(args.threads)] if str(args.threads) in latency else latency[str(args.thread_counts[-1])]

    progress("peak RSS of the runtime")
    rss = {name: peak_rss_mb(folder, wav_path, 1) for name, folder in folders.items()}

    wer = None
    if utterances:
        progress(f"WER on {len(utterances)} AN4 test utterances")
        refs = [ref for _, ref in utterances]
        torch.set_num_threads(1)  # one thread: deterministic sums, as in the tests
        hyps = {"torch_fp32": [], "torch_int8": [], "onnx_fp32": [], "onnx_int8": [],
                "onnx_fp32_beam": [], "onnx_int8_beam": [], "onnx_int8_frontend_int8": []}
        greedy_rt = {n: EarlyExitRuntime(f) for n, f in folders.items()}
        beam_rt = {n: EarlyExitRuntime(f, beam_size=args.beam_size) for n, f in folders.items()}
        ablation_rt = EarlyExitRuntime(int8_frontend_folder)
        for path, _ in utterances:
            audio, _ = soundfile.read(path, dtype="float32")
            hyps["torch_fp32"].append(torch_transcripts(model, hparams, audio))
            hyps["torch_int8"].append(torch_transcripts(model_int8, hparams, audio))
            for name in folders:
                hyps[f"onnx_{name}"].append(greedy_rt[name].all_exits(audio))
                hyps[f"onnx_{name}_beam"].append(beam_rt[name].all_exits(audio))
            hyps["onnx_int8_frontend_int8"].append(ablation_rt.all_exits(audio))
        wer = {name: [round(w, 2) for w in exit_word_error_rates(h, refs)] for name, h in hyps.items()}
        identical = [sum(a[k] == b[k] for a, b in zip(hyps["onnx_fp32"], hyps["torch_fp32"]))
                     for k in range(len(exit_layers))]
        wer_delta = [round(i - f, 2) for i, f in zip(wer["onnx_int8"], wer["onnx_fp32"])]
        wer_delta_torch = [round(i - f, 2) for i, f in zip(wer["torch_int8"], wer["torch_fp32"])]
        wer_delta_beam = [round(i - f, 2) for i, f in zip(wer["onnx_int8_beam"], wer["onnx_fp32_beam"])]

    result = {
        "benchmark": "export_latency",
        "model": os.path.relpath(args.model, REPO),
        "exit_layers": exit_layers,
        "size_ratio_int8": round(totals["int8"] / totals["fp32"], 4),
        "latency_ratio_onnx_int8_vs_torch_fp32_top": main_table["ratio_onnx_int8_vs_torch_fp32_by_exit"][-1],
        "wer_delta_int8_max": None if wer is None else max(wer_delta),
        "runtime_peak_rss_mb": max(r[0] for r in rss.values()),
        "goals": {
            "size_ratio_int8_le_0.30": totals["int8"] / totals["fp32"] <= 0.30,
            "runtime_peak_rss_le_300mb": max(r[0] for r in rss.values()) <= 300,
            "onnx_int8_top_le_0.6x_torch_fp32": main_table["ratio_onnx_int8_vs_torch_fp32_by_exit"][-1] <= 0.6,
            "onnx_int8_exits_within_k_over_K_plus_0.05":
                main_table["onnx_int8"]["exit_ratios_within_k_over_K_plus_0.05"],
            "wer_int8_within_0.5": None if wer is None else max(wer_delta) <= 0.5,
            "onnx_fp32_transcripts_identical": None if wer is None else all(i == len(utterances) for i in identical),
        },
        "sizes_bytes": {"total": totals, "files": sizes},
        "export_s": export_s,
        "audio_seconds": round(len(wav) / hparams["sample_rate"], 2),
        "audio": "AN4 test utterances concatenated" if utterances else "noise (no AN4)",
        "threads": args.threads,
        "latency_by_threads": latency,
        "rel_shift_max_abs_logprob_diff": shift_max_abs_diff,
        "fbank_numpy_vs_speechbrain_max_abs_diff_db": fbank_diff,
        "runtime_peak_rss_mb_by_folder": {name: r[0] for name, r in rss.items()},
        "runtime_rss_transcript_line": {name: r[1] for name, r in rss.items()},
        "wer": None if wer is None else {
            "utterances": len(utterances),
            "split": "AN4 test",
            "decoding": {
                "torch_fp32": "greedy CTC", "torch_int8": "greedy CTC", "onnx_fp32": "greedy CTC (runtime)",
                "onnx_int8": "greedy CTC (runtime)",
                "onnx_int8_frontend_int8": "greedy CTC (runtime); input projection also int8 (not the default)",
                "onnx_fp32_beam": f"runtime CTC prefix beam search, beam {args.beam_size}, no LM, no lexicon",
                "onnx_int8_beam": f"runtime CTC prefix beam search, beam {args.beam_size}, no LM, no lexicon",
            },
            "by_exit": wer,
            "int8_minus_fp32_onnx_greedy": wer_delta,
            "int8_minus_fp32_torch_greedy": wer_delta_torch,
            "int8_minus_fp32_onnx_beam": wer_delta_beam,
            "int8_frontend_int8_minus_fp32_onnx_greedy": [
                round(i - f, 2) for i, f in zip(wer["onnx_int8_frontend_int8"], wer["onnx_fp32"])],
            "threads": 1,
            "onnx_fp32_transcripts_identical_to_torch_fp32": identical,
        },
        "command": shlex.join([".venv/bin/python", "benchmarks/export_latency.py",
                               *(argv if argv is not None else sys.argv[1:])]),
        "machine": {**machine_info(), "onnxruntime": __import__("onnxruntime").__version__},
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.time() - started, 1),
        "notes": args.note,
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
