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
