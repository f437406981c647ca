"""Runs a corpus recipe (LibriSpeech, TED-LIUM 3, VoxPopuli) for a couple of
batches with a tiny model, then loads the exported model with
:class:`EarlyExitASR` and transcribes a manifest row (a whole file or a
segment of a long recording) at every exit."""

import csv
import json
import pathlib

from speechbrain_ee.data.audio import load_audio_segment
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.recipe import run

RECIPES = pathlib.Path(__file__).resolve().parents[2] / "recipes"

DEBUG = ["--number_of_epochs=1", "--debug", "--debug_batches=2", "--device=cpu", "--test_beam_size=2",
         "--max_batch_length=30", "--avg_checkpoints=1", "--test_dataloader_opts={batch_size: 4}"]
TINY_LM = ["--lm_epochs=1", "--lm_d_model=16", "--lm_nhead=2", "--lm_layers=1", "--lm_d_ffn=32"]
TINY = {  # per yaml: tiny sizes, a vocabulary the few test transcripts can train
    "conformer_ee.yaml": ["--vocab_size=40", "--num_workers=0", "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2",
                          "--exit_layers=[1, 2]", *TINY_LM],
    "conformer_aed_ee.yaml": ["--vocab_size=40", "--num_workers=0", "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2",
                              "--exit_layers=[1, 2]", "--num_decoder_layers=1", "--d_ffn_decoder=32",
                              "--aed_decoding=rescoring", *TINY_LM],
    "wav2vec2_ee.yaml": ["--exit_layers=[2, 4]"],
}


def run_recipe(corpus, yaml, data_folder, tmp_path, monkeypatch, *overrides):
    """Trains, tests and exports (``overrides`` win over the tiny defaults);
    returns (brain, output folder, exported model folder)."""
    monkeypatch.chdir(RECIPES / corpus)
    out, model = tmp_path / "exp", tmp_path / "model"
    flags = {}
    for flag in [f"--data_folder={data_folder}", f"--output_folder={out}", f"--pretrained_folder={model}",
                 *DEBUG, *TINY[yaml], *overrides]:
        name = flag.split("=", 1)[0]
        flags[name] = flag
    brain = run([f"hparams/{yaml}", *flags.values()])
    return brain, out, model


def check_run(brain, out, model, tmp_path, test_set="test"):
    """The per-exit test results, the preparation counts and the exported
    model transcribing the first test row; returns the preparation report."""
    exits = list(brain.hparams.exit_layers)
    summary = brain.test_results[test_set]
    assert summary["exit_layers"] == exits and len(summary["wer"]) == len(exits)
    report = json.loads((out / "manifests" / "preparation.json").read_text())
    train_rows = list(csv.DictReader(open(out / "manifests" / "train.csv")))
    assert report["splits"]["train"]["utterances"] == len(train_rows)
    asr = EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "asr"))
    assert list(asr.exit_layers) == exits
    row = next(csv.DictReader(open(out / "manifests" / f"{test_set}.csv")))
    if "start" in row:
        wav = load_audio_segment(row["wav"], row["start"], row["stop"])
        results = [asr.recognize_batch(wav[None], exit=i)[0] for i in range(len(exits))]
    else:
        results = [asr.recognize_file(row["wav"], exit=i) for i in range(len(exits))]
    assert all(isinstance(r.text, str) for r in results)
    return report
