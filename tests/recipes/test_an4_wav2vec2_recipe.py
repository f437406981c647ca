"""The AN4 wav2vec2 recipe for two batches on a tiny random wav2vec2 written
with ``save_pretrained`` (no weights can be downloaded here), then the
exported model through the evaluation command."""

import csv
import json
import pathlib

from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.cli.evaluate import main as evaluate_main
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.recipe import run

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "AN4"
DEBUG = ["--number_of_epochs=1", "--debug", "--debug_batches=2", "--device=cpu",
         "--test_beam_size=2", "--max_batch_length=10"]


def tiny_wav2vec2(folder):
    """Writes the random wav2vec2 of ``hparams/wav2vec2_ctc_tiny.yaml``; returns its folder."""
    with open(ROOT / "hparams" / "wav2vec2_ctc_tiny.yaml") as handle:
        return load_hyperpyyaml(handle, {"random_wav2vec2_folder": str(folder)})["wav2vec2_source"]


def test_an4_wav2vec2_recipe_two_batches_then_evaluate(an4_dir, tmp_path, monkeypatch, capsys):
    source = tiny_wav2vec2(tmp_path / "wav2vec2")
    monkeypatch.chdir(RECIPE)
    out = tmp_path / "exp"
    brain = run([
        "hparams/wav2vec2_ee.yaml", f"--data_folder={an4_dir}", f"--wav2vec2_source={source}",
        f"--output_folder={out}", f"--pretrained_folder={tmp_path / 'model'}", *DEBUG,
    ])
    summary = brain.test_results["test"]
    assert summary["exit_layers"] == [2, 4, 6, 8, 10, 12]
    assert len(summary["wer"]) == 6 and all(w >= 0 for w in summary["wer"])
    assert (out / "save" / "tokenizer" / "31_char.model").is_file()
    assert brain.hparams.output_neurons == 32
    assert (out / "wer_test_exit12.txt").is_file()
    exported = tmp_path / "model"
    for name in ("hyperparams.yaml", "model.yaml", "model.ckpt", "tokenizer.model", "wav2vec2/config.json"):
        assert (exported / name).is_file(), name
    assert not (exported / "normalize.ckpt").exists()

    # the exported directory is self-contained: the tiny checkpoint is not needed any more
    for weights in pathlib.Path(source).glob("*.safetensors"):
        weights.unlink()
    rows = list(csv.DictReader(open(out / "manifests" / "test.csv")))[:3]
    small = tmp_path / "small.csv"
    with open(small, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    code = evaluate_main(["--model", str(exported), "--csv", str(small), "--beam-size", "0",
                          "--json-out", str(tmp_path / "eval.json")])
    assert code == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["exit_layers"] == [2, 4, 6, 8, 10, 12] and len(result["wer"]) == 6

    asr = EarlyExitASR.from_hparams(source=str(exported), savedir=str(tmp_path / "asr"))
    for options, exit_index in (({"exit": 1}, 1), ({"selector": "entropy", "threshold": 100.0}, 0)):
        heard = asr.recognize_file(rows[0]["wav"], **options)
        assert heard.exit_index == exit_index and heard.layers == 2 * (exit_index + 1)
        assert isinstance(heard.text, str)
