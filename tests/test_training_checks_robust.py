"""Bad hyperparameters stop a run at start-up with the key's name."""

import pathlib

import pytest

from speechbrain_ee.nnet.encoder import EarlyExitConformerEncoder
from speechbrain_ee.nnet.frontend import MaskedConvFrontEnd
from speechbrain_ee.recipe import rescoring_overrides, run
from speechbrain_ee.training_checks import check_exit_layers, validate_recipe_hparams

REPO = pathlib.Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "recipes" / "Synthetic" / "hparams" / "conformer_ee.yaml"


@pytest.mark.parametrize("layers", [[2.5, 6], [2, 2.0], ["2", 4], [True, 2]])
def test_robust_non_integer_exit_layers_rejected(layers):
    with pytest.raises(ValueError, match="exit_layers: layers must be whole numbers"):
        check_exit_layers(layers, 12)


def test_robust_encoder_rejects_fractional_exit_layer():
    with pytest.raises(ValueError, match=r"exit_layers.*\[2\.5, 4\]"):
        EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16, nhead=2, d_ffn=32,
                                  num_layers=4, exit_layers=[2.5, 4])


@pytest.mark.parametrize("key, value, message", [
    ("lm_weight", float("nan"), "lm_weight must be a finite number >= 0, got nan"),
    ("lm_weight", -0.1, "lm_weight must be a finite number >= 0"),
    ("oov_penalty", float("inf"), "oov_penalty must be a finite number >= 0, got inf"),
    ("ctc_weight", 1.5, "ctc_weight must be a finite number >= 0 and <= 1"),
    ("number_of_epochs", 0, "number_of_epochs must be an integer >= 1, got 0"),
    ("number_of_epochs", 2.5, "number_of_epochs must be an integer"),
    ("test_beam_size", -1, "test_beam_size must be an integer >= 0, got -1"),
])
def test_robust_bad_numbers_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        validate_recipe_hparams({key: value})


@pytest.mark.parametrize("hparams, message", [
    ({"exit_layers": [2, 4], "exit_weights": "deep"}, "exit_weights: unknown scheme 'deep'"),
    ({"exit_layers": [2, 4], "exit_weights": [1.0]}, "exit_weights: 1 exit weights for 2 exits"),
    ({"exit_layers": [2, 4], "exit_weights": [1.0, float("nan")]}, r"exit_weights\[1\] must be a finite number >= 0"),
    ({"distill_weight": -0.5}, "distill_weight must be null or a finite number >= 0, got -0.5"),
    ({"distill_temperature": 0.0}, "distill_temperature must be a finite number > 0, got 0.0"),
    ({"distill_blank_threshold": 0.9}, "distill_blank_threshold 0.9 needs blank_index"),
    ({"blank_index": 28, "distill_blank_threshold": 1.5}, "distill_blank_threshold must be null or a finite number > 0 and <= 1, got 1.5"),
])
def test_robust_bad_loss_options_name_the_key(hparams, message):
    with pytest.raises(ValueError, match=message):
        validate_recipe_hparams(hparams)


def test_robust_loss_options_accepted():
    validate_recipe_hparams({"exit_layers": [2, 4], "num_layers": 4, "exit_weights": "depth", "distill_weight": 0.5,
                             "distill_temperature": 2.0, "distill_blank_threshold": 0.95, "blank_index": 28})
    validate_recipe_hparams({"exit_weights": None, "distill_weight": 0.0, "distill_temperature": None,
                             "distill_blank_threshold": None})


@pytest.mark.parametrize("override, message", [
    ("--exit_weights=deep", "exit_weights: unknown scheme 'deep'"),
    ("--exit_weights=[1, 2, 3]", "exit_weights: 3 exit weights for 2 exits"),
    ("--distill_temperature=0", "distill_temperature must be a finite number > 0"),
])
def test_robust_an4_recipe_checks_the_loss_options_at_start_up(tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(REPO / "recipes" / "AN4")
    argv = ["hparams/conformer_ee.yaml", f"--output_folder={tmp_path / 'out'}", f"--data_folder={tmp_path / 'an4'}",
            "--d_model=16", "--nhead=2", "--d_ffn=32", "--num_layers=2", "--exit_layers=[1, 2]", "--device=cpu",
            override]
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        run(argv)
    assert not (tmp_path / "out" / "manifests").exists()  # nothing was prepared


@pytest.mark.parametrize("override, message", [
    ("--number_of_epochs=0", "number_of_epochs must be an integer >= 1, got 0"),
    ("--test_beam_size=-1", "test_beam_size must be an integer >= 0, got -1"),
    ("--exit_layers=[1.5,2]", "exit_layers: layers must be whole numbers"),
])
def test_robust_recipe_stops_at_start_up(tmp_path, override, message):
    argv = [str(SYNTHETIC), f"--output_folder={tmp_path / 'out'}", f"--data_folder={tmp_path / 'data'}",
            "--num_layers=2", override, "--device=cpu"]
    if "exit_layers" not in override:
        argv.append("--exit_layers=[1,2]")
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        run(argv)
    assert not (tmp_path / "data").exists()  # nothing was prepared


@pytest.mark.parametrize("kwargs", [{"lm_weight": float("nan")}, {"lm_weight": -1}, {"oov_penalty": float("nan")},
                                    {"oov_penalty": float("-inf")}])
def test_robust_inference_weights_rejected(kwargs):
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        rescoring_overrides(str(REPO / "pretrained" / "an4-conformer-ctc-ee"), **kwargs)


def test_robust_greedy_test_decoding_is_accepted():
    validate_recipe_hparams({"test_beam_size": 0, "number_of_epochs": 1})  # 0: greedy CTC at test
