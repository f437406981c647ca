"""The robust AN4 recipe (conformer_ee_robust.yaml): the channel augmentation
runs, the recipe trains a couple of batches with it, and the yaml stays the
plain recipe plus its augmentation block."""

import pathlib
import re

import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.recipe import run

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "AN4"
BASE, ROBUST = RECIPE / "hparams" / "conformer_ee.yaml", RECIPE / "hparams" / "conformer_ee_robust.yaml"
TINY = [
    "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2", "--exit_layers=[1, 2]",
    "--number_of_epochs=1", "--debug", "--debug_batches=2", "--device=cpu",
    "--test_beam_size=2", "--max_batch_length=20", "--lm_epochs=1", "--channel_augment_prob=1.0",
]


def _without_robust_parts(text):
    body = text[text.index("seed:"):]  # the header comment says what the file is
    body = re.sub(r"# robust block.*?# end of the robust block\n", "", body, flags=re.S)
    return re.sub(r"^(experiment_name|wav_augment):.*\n(    .*\n)*", "", body, flags=re.M)


def test_robust_yaml_is_the_recipe_plus_its_augmentation_block():
    assert _without_robust_parts(ROBUST.read_text()) == _without_robust_parts(BASE.read_text())


def test_robust_channel_augmentation(tmp_path, monkeypatch):
    monkeypatch.chdir(RECIPE)
    with open(ROBUST) as handle:
        hparams = load_hyperpyyaml(handle, {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "o"),
                                            "channel_augment_prob": 1.0})
    wavs = 0.1 * torch.randn(3, 16000)
    lengths = torch.tensor([1.0, 0.8, 0.6])
    out, out_lengths = hparams["channel_augment"](wavs, lengths)
    assert out.shape == wavs.shape and torch.equal(out_lengths, lengths)
    assert torch.isfinite(out).all() and not torch.allclose(out, wavs)
    assert 1 <= int(hparams["channel_augment"].N_augment) <= 2
    names = {type(a).__name__ for a in hparams["channel_augment"].augmentations.values()}
    assert names == {"BandLimit", "DropFreq", "AddNoise", "RandAmp"}
    out, _ = hparams["wav_augment"](wavs, lengths)  # speed perturbation, then the channel
    assert out.shape[0] == 3 and torch.isfinite(out).all()


def test_an4_robust_recipe_two_batches(an4_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(RECIPE)
    brain = run(["hparams/conformer_ee_robust.yaml", f"--data_folder={an4_dir}",
                 f"--output_folder={tmp_path / 'exp'}", *TINY])
    assert int(brain.hparams.channel_augment.N_augment) >= 1  # set by forward: the degradations ran
    summary = brain.test_results["test"]
    assert summary["exit_layers"] == [1, 2] and len(summary["wer"]) == 2
