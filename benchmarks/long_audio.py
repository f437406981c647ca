#!/usr/bin/env python3
"""Long recordings in bounded memory: peak RSS and WER of EarlyExitASR on
concatenations of AN4 test utterances.

For each ``--lengths`` value (seconds), the AN4 test utterances are
concatenated in their list order (cycling through the list again when it is
shorter; whole utterances only, so the reference is exact) into one 16-bit
WAV file, and a fresh Python process loads the model and recognises that file
with the model's defaults (its selector and decoding unless ``--beam-size``;
inputs longer than ``chunk_seconds`` are cut at pauses and recognised in
segments: :mod:`speechbrain_ee.inference.chunked`). That process reports its
peak resident memory (``ru_maxrss``, which includes loading Python, torch and
the model: ``rss_after_load_gb``), the wall time of the recognition and the
transcript. ``--unchunked`` lengths are also run with chunking off, for
comparison.

The utterances are then recognised one by one (same model and selector), and
the WER of the longest file's transcript (one word sequence against the
concatenated references) is compared with the WER of the one-by-one
transcripts of the same utterances (``wer_delta`` = long - one by one).

    python benchmarks/long_audio.py --model pretrained/an4-conformer-ctc-ee \\
        --an4 ../shared/data/an4 --lengths 60 300 600 --unchunked 60 \\
        --json-out results/long_audio.json

``--pause-grid CSV`` instead measures, on the concatenated utterances of a
manifest (the AN4 dev speakers, held out from training: how the pause
settings of :mod:`speechbrain_ee.inference.chunked` were chosen), the WER of
each pause setting::

    python benchmarks/long_audio.py --pause-grid <an4 manifests>/dev.csv \\
        --json-out results/long_audio_pause_dev.json

The last line printed is the JSON result.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import numpy
import soundfile

from benchmarking import emit_result  # noqa: E402 (benchmarks/ is on the path when run as a script)
from speechbrain_ee.data.an4 import _read_split
from speechbrain_ee.machine import machine_info


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pretrained/an4-conformer-ctc-ee")
    parser.add_argument("--an4", default=os.path.join("..", "shared", "data", "an4"), help="AN4 corpus folder")
    parser.add_argument("--lengths", type=float, nargs="+", default=[60, 300, 600], help="seconds")
    parser.add_argument("--unchunked", type=float, nargs="*", default=[], help="lengths also run without chunking")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="default: the model's")
    parser.add_argument("--beam-size", type=int, default=None, help="default: the model's own decoding (its test_beam_size); 0: greedy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-utterances", type=int, default=None, help="use only the first N test utterances")
    parser.add_argument("--pause-grid", default=None, metavar="CSV",
                        help="instead: WER of the concatenated utterances of CSV (e.g. the AN4 dev manifest) "
                             "for each --min-pauses x --depths pause setting")
    parser.add_argument("--min-pauses", type=float, nargs="+", default=[0.3, 0.35, 0.4, 0.5])
    parser.add_argument("--depths", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load_model(args, chunk_seconds):
    import torch

    from speechbrain_ee.inference import EarlyExitASR

    torch.set_num_threads(args.threads)
    asr = EarlyExitASR.from_hparams(args.model, savedir=tempfile.mkdtemp(), beam_size=args.beam_size)
    if chunk_seconds is not None:
        asr.hparams.chunk_seconds = chunk_seconds
    return asr


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB


def worker(args):
    """Recognises one file and prints its result as JSON (run in a fresh process)."""
    chunk = args.chunk_seconds
    asr = load_model(args, chunk)
    after_load = peak_rss_gb()
    start = time.time()
    result = asr.recognize_file(args.worker)
    wall = time.time() - start
    print(json.dumps({
        "peak_rss_gb": round(peak_rss_gb(), 3), "rss_after_load_gb": round(after_load, 3),
        "wall_s": round(wall, 1), "text": result.text, "mean_layers": result.layers,
        "segments": len(result.segments) if result.segments else 1,
        "chunk_seconds": getattr(asr.hparams, "chunk_seconds", None),
    }))


def concatenation(utterances, seconds):
    """The utterances (cycled) whose total length stays within ``seconds``."""
    chosen, total, i = [], 0.0, 0
    while True:
        utt = utterances[i % len(utterances)]
        if total + utt["seconds"] > seconds:
            return chosen
        chosen.append(utt)
        total += utt["seconds"]
        i += 1


def word_errors(ref_words, hyp_words):
    """Edit distance in words (Levenshtein) and reference length."""
    from speechbrain.utils.edit_distance import accumulatable_wer_stats

    stats = accumulatable_wer_stats([ref_words], [hyp_words])
    return stats["insertions"] + stats["deletions"] + stats["substitutions"], stats["num_ref_tokens"]


def run_worker(args, path, chunk_seconds):
    command = [sys.executable, os.path.abspath(__file__), "--worker", path, "--model", args.model,
               "--threads", str(args.threads)]
    if chunk_seconds is not None:
        command += ["--chunk-seconds", str(chunk_seconds)]
    if args.beam_size is not None:
        command += ["--beam-size", str(args.beam_size)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"worker failed on {path}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pause_grid(args, started):
    """WER of one concatenation of the utterances of ``args.pause_grid`` for
    each pause setting (default selector and last exit), and one by one."""
    import csv

    import torch

    from speechbrain_ee.data.audio import load_audio
    from speechbrain_ee.inference.chunked import find_cuts

    asr = load_model(args, 0)
    with open(args.pause_grid, newline="") as handle:
        rows = list(csv.DictReader(handle))
    wavs = [load_audio(row["wav"]) for row in rows]
    reference = " ".join(row["wrd"] for row in rows).split()
    wav = torch.cat(wavs)
    last = len(asr.exit_layers) - 1

    def wer(texts):
        edits, words = word_errors(reference, " ".join(texts).split())
        return round(100 * edits / words, 2)

    grid = []
    for min_pause in args.min_pauses:
        for depth in args.depths:
            cuts = find_cuts(wav, 16000, args.chunk_seconds or 30, min_pause=min_pause, depth=depth)
            pieces = [wav[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
            grid.append({
                "min_pause": min_pause, "depth": depth, "segments": len(pieces),
                "wer_default_selector": wer([asr.recognize_batch(p[None])[0].text for p in pieces]),
                "wer_last_exit": wer([asr.recognize_batch(p[None], exit=last)[0].text for p in pieces]),
            })
            print(json.dumps(grid[-1]), file=sys.stderr)
    return emit_result({
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:]),
        "csv": args.pause_grid, "utterances": len(rows), "seconds": round(wav.shape[0] / 16000, 1),
        "one_by_one": {"wer_default_selector": wer([asr.recognize_batch(w[None])[0].text for w in wavs]),
                       "wer_last_exit": wer([asr.recognize_batch(w[None], exit=last)[0].text for w in wavs])},
        "grid": grid, "decoder": repr(asr.decoder),  # what ran: the model's default unless --beam-size
        "selector": repr(asr.default_selector), "threads": args.threads,
        "machine": machine_info(), "wall_s": round(time.time() - started, 1),
    }, args.json_out)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.pause_grid:
        return pause_grid(args, time.time())
    started = time.time()
    utterances = []
    for utt in _read_split(args.an4, "test")[: args.max_utterances]:
        data, rate = soundfile.read(utt.wav, dtype="int16")
        utterances.append({"id": utt.ID, "wav": utt.wav, "wrd": utt.wrd, "data": data, "rate": rate,
                           "seconds": len(data) / rate})
    folder = tempfile.mkdtemp(prefix="long_audio_")
    runs = []
    longest = None
    for seconds in sorted(set(args.lengths) | set(args.unchunked)):
        chosen = concatenation(utterances, seconds)
        path = os.path.join(folder, f"an4_test_{int(seconds)}s.wav")
        soundfile.write(path, numpy.concatenate([u["data"] for u in chosen]), 16000, subtype="PCM_16")
        modes = ([args.chunk_seconds] if seconds in args.lengths else []) + ([0] if seconds in args.unchunked else [])
        for chunk in modes:
            measured = run_worker(args, path, chunk)
            reference = " ".join(u["wrd"] for u in chosen).split()
            edits, words = word_errors(reference, measured.pop("text").split())
            measured.update(seconds=round(sum(u["seconds"] for u in chosen), 2), utterances=len(chosen),
                            chunked=chunk != 0, wer=round(100 * edits / words, 2))
            runs.append(measured)
            print(json.dumps(measured), file=sys.stderr)
            if chunk != 0 and seconds == max(args.lengths):
                longest = (chosen, measured)

    asr = load_model(args, args.chunk_seconds)
    hyps = {}
    for utt in utterances:
        hyps[utt["id"]] = asr.recognize_file(utt["wav"]).text.split()
    chosen, measured = longest
    edits = words = 0
    for utt in chosen:
        e, w = word_errors(utt["wrd"].split(), hyps[utt["id"]])
        edits, words = edits + e, words + w
    one_by_one = round(100 * edits / words, 2)
    chunked = [r for r in runs if r["chunked"]]
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:]),
        "model": args.model,
        "decoder": repr(asr.decoder),  # what ran: the model's default unless --beam-size
        "selector": repr(asr.default_selector),
        "threads": args.threads,
        "runs": runs,
        "long_audio_600s_peak_rss_gb": next((r["peak_rss_gb"] for r in chunked if r["seconds"] > 590), None),
        "rss_growth_gb_per_minute": round(
            (chunked[-1]["peak_rss_gb"] - chunked[0]["peak_rss_gb"])
            / max(1e-9, (chunked[-1]["seconds"] - chunked[0]["seconds"]) / 60), 4) if len(chunked) > 1 else None,
        "longest": {"seconds": measured["seconds"], "utterances": measured["utterances"],
                    "wer_long_file": measured["wer"], "wer_one_by_one": one_by_one,
                    "wer_delta": round(measured["wer"] - one_by_one, 2)},
        "machine": machine_info(),
        "wall_s": round(time.time() - started, 1),
    }
    return emit_result(result, args.json_out)


if __name__ == "__main__":
    main()
