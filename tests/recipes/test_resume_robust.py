"""Kill + resume reproduces an uninterrupted run exactly (Synthetic recipe,
tiny corpus and model): the random generators are checkpointed."""

import pathlib

import torch

from speechbrain_ee.cli import demo
from speechbrain_ee.recipe import run

TINY = [
    "--num_train=16", "--num_dev=4", "--num_test=4", "--vocab_size=40",
    "--d_model=32", "--d_ffn=64", "--nhead=2", "--num_layers=2", "--exit_layers=[1,2]",
    "--test_beam_size=1", "--debug", "--debug_persistently", "--debug_batches=2", "--device=cpu",
]


def train(data, out, epochs):
    argv = [str(demo.RECIPE_YAML), f"--output_folder={out}", f"--data_folder={data}",
            f"--debug_epochs={epochs}", *TINY]
    return run(argv)


def last_weights(out):
    checkpoints = sorted(pathlib.Path(out, "save").glob("CKPT+*"), key=lambda p: p.stat().st_mtime)
    return torch.load(checkpoints[-1] / "model.ckpt"), checkpoints[-1]


def test_robust_resume_after_kill_is_exact(tmp_path):
    data = tmp_path / "data"
    train(data, tmp_path / "straight", 2)
    train(data, tmp_path / "resumed", 1)  # "killed" after epoch 1
    resumed = train(data, tmp_path / "resumed", 2)
    straight_state, straight_ckpt = last_weights(tmp_path / "straight")
    resumed_state, resumed_ckpt = last_weights(tmp_path / "resumed")
    assert "epoch: 2" in (straight_ckpt / "CKPT.yaml").read_text()
    assert "epoch: 2" in (resumed_ckpt / "CKPT.yaml").read_text()
    assert straight_state.keys() == resumed_state.keys()
    different = [k for k in straight_state if not torch.equal(straight_state[k], resumed_state[k])]
    assert not different, f"weights differ after resume: {different[:5]}"
    assert (resumed_ckpt / "rng.ckpt").is_file()
    assert resumed.test_results["test"]["exit_layers"] == [1, 2]
