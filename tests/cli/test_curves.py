"""``sbee curves`` and ``sbee calibrate`` on a tiny random model."""

import csv
import json
import pathlib

import numpy
import pytest
import soundfile

from speechbrain_ee.cli.calibrate import main as calibrate_main
from speechbrain_ee.cli.curves import main as curves_main
from speechbrain_ee.data.manifest import Utterance, write_manifest
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.recipe import rescoring_overrides
from speechbrain_ee.selection import EntropySelector
from speechbrain_ee.testing import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_and_manifest(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curves")
    model_dir = write_random_model_dir(str(tmp / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    rng = numpy.random.default_rng(0)
    utts = []
    for i, (seconds, words) in enumerate([(0.6, "YES NO"), (1.1, "ONE TWO THREE"), (0.8, "STOP"),
                                           (1.4, "ERASE C Q Q F SEVEN")]):
        path = tmp / f"u{i}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
        utts.append(Utterance(f"u{i}", str(path), "spk", words))
    write_manifest(utts, str(tmp / "test.csv"))
    return model_dir, str(tmp / "test.csv"), tmp


def test_curve_command_writes_csv_png_json(model_and_manifest):
    model_dir, manifest, tmp = model_and_manifest
    out = tmp / "results" / "sel"
    assert curves_main(["--model", model_dir, "--csv", manifest, "--output-dir", str(out), "--topk", "3",
                        "--json-out", str(tmp / "copy.json")]) == 0
    summary = json.loads((out / "curves.json").read_text())
    assert json.loads((tmp / "copy.json").read_text()) == summary
    assert summary["utterances"] == 4 and summary["exit_layers"] == [1, 2, 3, 4]
    for name in ("fixed", "entropy", "confidence", "patience", "agreement", "oracle"):
        assert "mean_exit_at_top_plus_0p5" in summary["selectors"][name]
    assert (out / "curves.png").stat().st_size > 1000
    with open(out / "curves.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["selector"] for r in rows} >= {"fixed", "entropy", "confidence", "oracle"}
    # the cached exit table gives the same sweep without decoding
    again = tmp / "results" / "again"
    assert curves_main(["--table", str(out / "exits.json"), "--output-dir", str(again), "--topk", "3"]) == 0
    assert (again / "curves.csv").read_text() == (out / "curves.csv").read_text()


def test_calibration_command_stores_the_default_selector(model_and_manifest, tmp_path):
    model_dir, manifest, _ = model_and_manifest
    copy = tmp_path / "model"
    copy.mkdir()
    for item in pathlib.Path(model_dir).iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    args = ["--model", str(copy), "--csv", manifest, "--selector", "entropy"]
    assert calibrate_main(args + ["--target-mean-exit", "2.5"]) == 0
    asr = EarlyExitASR.from_hparams(str(copy), savedir=str(tmp_path / "save"))
    assert isinstance(asr.default_selector, EntropySelector)
    assert calibrate_main(args + ["--target-wer", "-1"]) == 2


def test_curve_command_lm_weight_needs_an_lm(model_and_manifest, capsys):
    model_dir, manifest, tmp = model_and_manifest
    out = str(tmp / "results" / "lm")
    assert curves_main(["--model", model_dir, "--csv", manifest, "--output-dir", out, "--lm-weight", "0.3"]) == 2
    assert "has no LM" in capsys.readouterr().err
    assert rescoring_overrides(model_dir, 0.0) == {} and rescoring_overrides(model_dir, None) == {}
    assert curves_main(["--model", model_dir, "--csv", manifest, "--output-dir", out, "--oov-penalty", "2"]) == 2
    assert "has no lexicon" in capsys.readouterr().err
    assert rescoring_overrides(model_dir, oov_penalty=0.0) == {}
