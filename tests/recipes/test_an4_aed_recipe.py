"""The AN4 Conformer-AED recipe end to end for a couple of batches (tiny model,
cheap beam search at test)."""

import json
import pathlib

import pytest
import torch

from speechbrain_ee.decoding import transcript_words
from speechbrain_ee.recipe import export_trained, run

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "AN4"

TINY = [
    "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2", "--exit_layers=[1, 2]",
    "--num_decoder_layers=1", "--d_ffn_decoder=32", "--test_beam_size=2", "--lm_epochs=1",
    "--number_of_epochs=1", "--debug", "--debug_batches=2", "--device=cpu",
    "--self_condition=True",  # the exits' CTC posteriors feed the layers above (travels with the export)
    "--oov_penalty=1.0",  # the lexicon penalty re-ranks each exit's N-best (travels with the export)
    "--decoder_exits_per_step=1",  # one decoder per training step, drawn at random
]


def test_an4_aed_recipe_two_batches(an4_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(RECIPE)
    out = tmp_path / "exp"
    brain = run([
        "hparams/conformer_aed_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}",
        f"--pretrained_folder={tmp_path / 'model'}", *TINY,
    ])
    summary = brain.test_results["test"]
    assert summary["exit_layers"] == [1, 2]
    assert len(summary["wer"]) == 2 and all(w >= 0 for w in summary["wer"])
    searchers = brain.test_decoder._searchers  # the test stage used the joint beam search...
    assert sorted(searchers) == [(0, 2), (1, 2)]  # ...returning its 2 best for the lexicon penalty
    weights = searchers[(1, 2)].scorer.weights
    assert weights["ctc"] == 0.6 and weights["transformerlm"] == 0.15  # ...with CTC and the LM
    assert sorted(brain.test_decoder.rescorer.rescorers) == ["lexicon"]  # the LM is fused, not rescored
    lexicon = (out / "save" / "lexicon.txt").read_text().split()  # the training transcripts' words
    assert lexicon == sorted(transcript_words(str(out / "manifests" / "train.csv")))
    assert (out / "save" / "lm" / "transformer_lm.ckpt").is_file()  # LM trained on the transcripts
    assert "ACC_exit2" in brain.test_stats
    for layer in (1, 2):
        assert (out / f"wer_test_exit{layer}.txt").is_file()
    assert json.loads((out / "exit_summary_test.json").read_text())["exit_layers"] == [1, 2]
    sp = brain.hparams.tokenizer
    assert sp.bos_id() == brain.hparams.bos_index and sp.eos_id() == brain.hparams.eos_index
    for name in ("hyperparams.yaml", "model.yaml", "model.ckpt", "normalize.ckpt", "tokenizer.model"):
        assert (tmp_path / "model" / name).is_file()
    # the exported directory decodes with the exits' attention decoders
    from speechbrain_ee.inference import EarlyExitASR

    asr = EarlyExitASR.from_hparams(str(tmp_path / "model"), savedir=str(tmp_path / "asr"))
    assert type(asr.decoder).__name__ == "AttentionTextDecoder"
    assert asr.mods.model.conditioning is not None
    assert asr.decoder.ctc_weight == 0.6
    assert asr.decoder.lm_weight == 0.15 and asr.decoder.lm_scorer is not None  # the LM travels along
    assert sorted(asr.decoder.rescorer.rescorers) == ["lexicon"]  # and so does the lexicon
    assert asr.decoder.rescorer.weights["lexicon"] == 1.0
    lm_state = torch.load(tmp_path / "model" / "lm.ckpt")
    assert lm_state and all(v.dtype == torch.float16 for v in lm_state.values() if v.is_floating_point())
    loaded_lm = asr.hparams.lm_scorer.lm.state_dict()
    for name, value in lm_state.items():  # export_dtype float16: half-size files ...
        assert torch.equal(loaded_lm[name], value.float())
    # ... without the positional tables, loaded as float32
    model_state = torch.load(tmp_path / "model" / "model.ckpt")
    assert not any(name.endswith("positional_encoding.pe") for name in model_state)
    assert all(p.dtype == torch.float32 for p in asr.mods.model.parameters())
    # ... and the evaluation command scores every exit with them
    from speechbrain_ee.cli.evaluate import main as evaluate_main

    test_csv = out / "manifests" / "test.csv"
    lines = test_csv.read_text().splitlines()
    small_csv = tmp_path / "small.csv"
    small_csv.write_text("\n".join(lines[:4]) + "\n")

    def evaluated(*flags):
        summary_path = tmp_path / "eval.json"
        assert evaluate_main(["--model", str(tmp_path / "model"), "--csv", str(small_csv),
                              "--json-out", str(summary_path), *flags]) == 0
        return json.loads(summary_path.read_text())

    summary = evaluated("--beam-size", "2", "--ctc-weight", "0.6", "--lm-weight", "0")  # weights replaced for tuning
    assert summary["exit_layers"] == [1, 2] and len(summary["wer"]) == 2
    assert "CTC x0.6" in summary["decoder"] and "LM" not in summary["decoder"]
    summary = evaluated("--beam-size", "2", "--oov-penalty", "0")  # the exported penalty replaced: no re-ranking
    assert len(summary["wer"]) == 2 and "unknown words" not in summary["decoder"]
    summary = evaluated("--beam-size", "4", "--decoding", "rescoring")  # attention rescoring of the CTC prefix beam
    assert len(summary["wer"]) == 2 and summary["decoder"].startswith("attention rescoring")
    assert "aed_decoding: joint" in (tmp_path / "model" / "hyperparams.yaml").read_text()
    # a finished run exports again from its best checkpoint, without training
    # (--debug kept the run's checkpoints in a temporary folder: save one where a run would)
    checkpointer = brain.checkpointer
    checkpointer.checkpoints_dir = out / "save"
    checkpointer.save_checkpoint(meta={"mean_WER": 50.0})
    export_trained([
        "hparams/conformer_aed_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}",
        f"--pretrained_folder={tmp_path / 'again'}", *TINY,
    ])
    again, first = (torch.load(tmp_path / name / "model.ckpt") for name in ("again", "model"))
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    assert (tmp_path / "again" / "lm.ckpt").is_file()
