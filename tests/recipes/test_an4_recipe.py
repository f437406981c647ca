"""The AN4 recipe end to end for a couple of batches, then the evaluation
command on the exported model."""

import csv
import json
import pathlib

import pytest

from speechbrain_ee.cli.attach_lm import main as attach_lm_main
from speechbrain_ee.recipe import rescoring_overrides
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.cli.evaluate import main as evaluate_main
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.recipe import run

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "AN4"

TINY = [
    "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2", "--exit_layers=[1, 2]",
    "--number_of_epochs=2", "--debug", "--debug_batches=2", "--device=cpu",
    "--test_beam_size=2", "--max_batch_length=20", "--lm_epochs=1",
]


def test_an4_recipe_two_batches_then_evaluate(an4_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(RECIPE)
    out = tmp_path / "exp"
    brain = run([
        "hparams/conformer_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}",
        f"--pretrained_folder={tmp_path / 'model'}", *TINY, "--avg_checkpoints=2",
    ])
    summary = brain.test_results["test"]
    assert len(brain.averaged_checkpoints) == 2  # tested (and exported) the average of both epochs
    assert summary["exit_layers"] == [1, 2]
    assert len(summary["wer"]) == 2 and all(w >= 0 for w in summary["wer"])
    for layer in (1, 2):
        assert (out / f"wer_test_exit{layer}.txt").is_file()
    assert (out / "exit_summary_test.json").is_file()
    for name in ("hyperparams.yaml", "model.yaml", "model.ckpt", "normalize.ckpt", "tokenizer.model",
                 "lm.yaml", "lm.ckpt"):
        assert (tmp_path / "model" / name).is_file()
    assert (out / "save" / "lm" / "transformer_lm.ckpt").is_file()  # LM trained on the transcripts
    assert brain.test_decoder.rescorer.weights["transformerlm"] == 0.05  # ...rescored the test N-best lists (default chosen on dev)
    assert brain.test_decoder.rescorer.weights["lexicon"] == 4.0  # ...with the training words as lexicon
    train_words = {w for row in csv.DictReader(open(out / "manifests" / "train.csv")) for w in row["wrd"].split()}
    assert (tmp_path / "model" / "lexicon.txt").read_text().split() == sorted(train_words)
    assert brain.test_decoder.searcher.topk == 2 and brain.test_decoder.searcher.prune_history is False

    # evaluation command on a 4-utterance CSV
    rows = list(csv.DictReader(open(out / "manifests" / "test.csv")))[:4]
    small = tmp_path / "small.csv"
    with open(small, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    code = evaluate_main(["--model", str(tmp_path / "model"), "--csv", str(small), "--beam-size", "0",
                          "--json-out", str(tmp_path / "eval.json")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "exit layer   WER %   CER %" in printed
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["exit_layers"] == [1, 2] and len(result["cer"]) == 2

    # beam search with the exported LM, its weight replaced on the command line
    assert evaluate_main(["--model", str(tmp_path / "model"), "--csv", str(small), "--beam-size", "2",
                          "--lm-weight", "0.2", "--output-dir", str(tmp_path / "lm_eval")]) == 0
    asr = EarlyExitASR.from_hparams(source=str(tmp_path / "model"), savedir=str(tmp_path / "asr"))
    assert "LM rescoring x0.05 + unknown words -4" in repr(asr.build_decoder(beam_size=2))  # the inference API too
    assert "LM" not in repr(asr.build_decoder(beam_size=0))
    capsys.readouterr()
    assert evaluate_main(["--model", str(tmp_path / "model"), "--csv", str(small), "--ctc-weight", "0.5"]) == 2
    assert "--ctc-weight and --decoding apply to attention models" in capsys.readouterr().err
    assert evaluate_main(["--model", str(tmp_path / "model"), "--csv", str(small), "--decoding", "rescoring"]) == 2
    assert "apply to attention models" in capsys.readouterr().err


def test_evaluate_bad_model_dir(tmp_path, capsys):
    code = evaluate_main(["--model", str(tmp_path), "--csv", str(tmp_path / "x.csv")])
    assert code == 2
    assert "not a model directory" in capsys.readouterr().err


def test_recipe_missing_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(RECIPE)
    with pytest.raises(DataPreparationError, match="AN4 data folder not found: .*nope"):
        run(["hparams/conformer_ee.yaml", f"--data_folder={tmp_path / 'nope'}",
             f"--output_folder={tmp_path / 'exp'}", *TINY])


def test_attach_lm_to_an_exported_model(an4_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(RECIPE)
    out, model = tmp_path / "exp", tmp_path / "model"
    common = ["hparams/conformer_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}", *TINY]
    run([*common, f"--pretrained_folder={model}", "--lm_weight=0"])  # exported without an LM
    assert not (model / "lm.ckpt").exists()
    before = (model / "hyperparams.yaml").read_text()
    assert attach_lm_main([*common, "--lm_weight=0.3", f"--model={model}"]) == 0
    assert (model / "lm.ckpt").is_file() and "lm_weight: 0.3" in (model / "hyperparams.yaml").read_text()
    asr = EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "asr"))
    assert "LM rescoring x0.3" in repr(asr.build_decoder(beam_size=2))
    assert rescoring_overrides(str(model), 0.2) == {"lm_weight": 0.2}  # curves --lm-weight
    capsys.readouterr()
    assert attach_lm_main([*common, "--lm_weight=0.3", f"--model={model}"]) == 2  # only once
    assert "already has an LM" in capsys.readouterr().err
    (model / "hyperparams.yaml").write_text(before)
    other = tmp_path / "other_tokenizer"
    assert attach_lm_main([*common, "--vocab_size=40", "--token_type=unigram",
                           f"--tokenizer_folder={other}", f"--model={model}"]) == 2
    assert "tokenizer differs" in capsys.readouterr().err
    assert (model / "hyperparams.yaml").read_text() == before  # nothing written when a check fails


def test_an4_recipe_ddp_two_processes(an4_dir, tmp_path):
    """The recipe under ``torchrun --nproc_per_node=2`` with gloo: tokenizer,
    lexicon and manifests made once, the transcript LM trained with the run's
    options, both processes train, test and stop together."""
    import os
    import subprocess
    import sys

    out = tmp_path / "exp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
               "hparams/conformer_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}",
               f"--pretrained_folder={tmp_path / 'model'}", *TINY, "--debug_persistently",  # one checkpoint folder for both processes
               "--distributed_backend=gloo", "--noprogressbar"]
    env = {**os.environ, "PYTHONPATH": str(RECIPE.parents[1]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=RECIPE, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "Grad strides do not match" not in done.stderr
    summary = json.loads((out / "exit_summary_test.json").read_text())
    assert summary["exit_layers"] == [1, 2]
    assert (tmp_path / "model" / "lm.ckpt").is_file() and (tmp_path / "model" / "model.ckpt").is_file()


def test_an4_recipe_warm_start_from_the_shipped_model(an4_dir, tmp_path, monkeypatch):
    """``init_from``: the recipe's model starts from the shipped model (a
    single-exit [12] model takes its exit at layer 12), so two training
    batches at a tiny rate leave a model that already transcribes AN4;
    the same run from scratch does not."""
    shipped = RECIPE.parents[1] / "pretrained" / "an4-conformer-ctc-ee"
    monkeypatch.chdir(RECIPE)
    common = [f"--data_folder={an4_dir}", "--number_of_epochs=1", "--debug", "--debug_batches=2",
              "--device=cpu", "--test_beam_size=0", "--lm_epochs=1", "--lr=1e-7", "--exit_layers=[12]"]
    warm = run(["hparams/conformer_ee.yaml", f"--output_folder={tmp_path / 'warm'}",
                f"--init_from={shipped}", *common])
    cold = run(["hparams/conformer_ee.yaml", f"--output_folder={tmp_path / 'cold'}", *common])
    assert warm.test_results["test"]["wer"][0] < 30 < cold.test_results["test"]["wer"][0]


def test_an4_recipe_with_distillation_and_gradient_equilibrium(an4_dir, tmp_path, monkeypatch):
    """The loss keys of the recipe reach the Brain and the encoder: the train
    log has the lower exit's KD term, the exported model carries the
    (training-only) gradient-equilibrium flag and loads."""
    monkeypatch.chdir(RECIPE)
    out, model = tmp_path / "exp", tmp_path / "model"
    brain = run(["hparams/conformer_ee.yaml", f"--data_folder={an4_dir}", f"--output_folder={out}",
                 f"--pretrained_folder={model}", *TINY, "--lm_weight=0",
                 "--distill_weight=0.5", "--distill_temperature=2.0", "--distill_blank_threshold=0.95",
                 "--exit_weights=depth", "--gradient_equilibrium=True"])
    assert brain.unwrapped_model.encoder.gradient_equilibrium is True
    assert brain.exit_weights() == [0.6666666666666666, 1.3333333333333333]
    assert "kd_exit1" in brain.train_stats and "kd_exit2" not in brain.train_stats
    assert "kd_exit1" in (out / "train_log.txt").read_text()
    assert "gradient_equilibrium: true" in (model / "hyperparams.yaml").read_text()
    asr = EarlyExitASR.from_hparams(source=str(model), savedir=str(tmp_path / "asr"))
    assert asr.mods.model.encoder.gradient_equilibrium is True and not asr.mods.model.training
