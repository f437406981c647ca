"""The Synthetic recipe end to end, and the demo that drives it (tiny corpus,
tiny model, two batches per epoch)."""

import json

from speechbrain_ee.cli import demo
from speechbrain_ee.recipe import run

RECIPE = demo.RECIPE_YAML
# a tiny corpus and model: the flow is tested, not the accuracy
TINY = [
    "--num_train=24", "--num_dev=4", "--num_test=4", "--vocab_size=40",
    "--d_model=32", "--d_ffn=64", "--nhead=2", "--num_layers=2", "--exit_layers=[1,2]",
    "--test_beam_size=2", "--debug", "--debug_batches=2", "--device=cpu",
]


def tiny_argv(tmp_path):
    return [
        str(RECIPE), f"--output_folder={tmp_path / 'out'}", f"--data_folder={tmp_path / 'data'}", *TINY
    ]


def test_recipe_runs_end_to_end(tmp_path):
    brain = run(tiny_argv(tmp_path))
    summary = brain.test_results["test"]
    assert summary["exit_layers"] == [1, 2]
    assert len(summary["wer"]) == len(summary["cer"]) == 2
    assert all(w >= 0 for w in summary["wer"])
    out = tmp_path / "out"
    assert json.loads((out / "exit_summary_test.json").read_text()) == summary
    assert (out / "wer_test_exit2.txt").is_file()
    assert "epoch: 2" in (out / "train_log.txt").read_text()
    for split in ("train", "dev", "test"):
        assert (tmp_path / "data" / f"{split}.csv").is_file()


def test_demo_writes_table_json_and_chart(tmp_path, capsys):
    results = tmp_path / "work"
    argv = ["--output-dir", str(results), "--minutes", "5", "--json-out", str(tmp_path / "copy.json"), *TINY]
    summary = demo.run_demo(argv)
    saved = json.loads((results / "demo_conformer_ctc_ee.json").read_text())
    assert saved == summary == json.loads((tmp_path / "copy.json").read_text())
    assert saved["exit_layers"] == [1, 2] and len(saved["wer"]) == len(saved["cer"]) == 2
    assert {"command", "wall_s", "params", "machine"} <= set(saved)
    assert saved["command"].startswith("sbee demo --output-dir")
    assert 0 < saved["wall_s"] < 300 and saved["params"] > 1000
    assert (results / "demo_conformer_ctc_ee.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "exit layer   WER %   CER %" in printed
    assert f"{saved['wer'][-1]:7.2f}" in printed
