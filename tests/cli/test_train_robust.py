"""``sbee train`` / ``sbee export`` / ``sbee attach-lm``: user errors of a
recipe's command line are one line and exit status 2 (``--traceback``: the traceback)."""

import pathlib

import pytest

from speechbrain_ee.cli.main import main
from speechbrain_ee.data.manifest import DataPreparationError

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "recipes" / "AN4" / "hparams" / "conformer_ee.yaml"
TINY = ["--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2", "--exit_layers=[1, 2]", "--device=cpu"]


def one_error_line(capsys):
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1
    return errors[0]


def test_robust_train_missing_data_folder(tmp_path, capsys):
    args = ["train", str(RECIPE), f"--data_folder={tmp_path / 'nope'}", f"--output_folder={tmp_path / 'exp'}", *TINY]
    assert main(args) == 2
    assert "AN4 data folder not found" in one_error_line(capsys)
    with pytest.raises(DataPreparationError):
        main([*args, "--traceback"])


def test_robust_train_bad_override(tmp_path, capsys):
    assert main(["train", str(RECIPE), "--data_folder=x", f"--output_folder={tmp_path}", "--numb_layers=3"]) == 2
    assert one_error_line(capsys) == "error: unknown override --numb_layers: the recipe yaml has no key 'numb_layers'"
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in one_error_line(capsys)


def test_robust_export_without_a_run(tmp_path, capsys):
    assert main(["export", str(RECIPE), "--data_folder=x", f"--output_folder={tmp_path / 'exp'}", *TINY,
                 f"--pretrained_folder={tmp_path / 'model'}"]) == 2
    assert str(tmp_path / "exp") in one_error_line(capsys)  # the run that is not there
    assert main(["export", "--format", "tflite", str(RECIPE)]) == 2
    assert "--format must be one of pytorch, onnx" in one_error_line(capsys)


def test_robust_attach_lm_needs_one_model(capsys):
    assert main(["attach-lm", str(RECIPE), "--data_folder=x"]) == 2
    assert "--model=DIR" in one_error_line(capsys)
