"""``sbee evaluate`` on bad input: outputs checked before the work, a bad
row named (or skipped with --skip-bad), references that cannot be scored."""

import csv
import json
import pathlib

import numpy
import pytest
import soundfile

from speechbrain_ee.cli.evaluate import main
from speechbrain_ee.inference.interfaces import EarlyExitASR
from speechbrain_ee.testing import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate_robust")
    model = write_random_model_dir(str(tmp / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    rng = numpy.random.default_rng(0)
    rows = []
    for i, words in enumerate(["HELLO WORLD", "ONE TWO", "YES"]):
        path = tmp / f"u{i}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(12000 + 2000 * i), 16000)
        rows.append({"ID": f"u{i}", "duration": f"{0.75 + 0.125 * i}", "wav": str(path), "spk_id": "s", "wrd": words})
    bad = tmp / "bad.wav"
    bad.write_text("not audio")
    return model, rows, str(bad), tmp


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fails the test if the model is loaded (the work has started)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")
    monkeypatch.setattr(EarlyExitASR, "from_hparams", refuse)


@pytest.mark.parametrize("flag", ["--json-out", "--output", "--output-dir"])
def test_robust_unwritable_outputs_fail_before_the_work(setup, tmp_path, capsys, no_model_loading, flag):
    model, rows, _, _ = setup
    manifest = write_csv(tmp_path / "test.csv", rows)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["--model", model, "--csv", manifest, flag, str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write {flag} {blocker / 'out.json'}")


def test_robust_a_bad_row_is_named(setup, tmp_path, capsys):
    model, rows, bad, _ = setup
    manifest = write_csv(tmp_path / "test.csv", [*rows[:2], {**rows[2], "ID": "broken", "wav": bad}])
    summary = tmp_path / "summary.json"
    assert main(["--model", model, "--csv", manifest, "--json-out", str(summary)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "row broken" in errors[0] and bad in errors[0] and "--skip-bad" in errors[0]
    assert not summary.exists() and list(tmp_path.iterdir()) == [tmp_path / "test.csv"]  # no half-written file


def test_robust_skip_bad_scores_the_rest_and_lists_the_rows(setup, tmp_path, capsys):
    model, rows, bad, _ = setup
    manifest = write_csv(tmp_path / "test.csv", [rows[0], {**rows[1], "ID": "broken", "wav": bad}, rows[2]])
    summary_path = tmp_path / "summary.json"
    assert main(["--model", model, "--csv", manifest, "--skip-bad", "--json-out", str(summary_path)]) == 1
    summary = json.loads(summary_path.read_text())
    assert [s["ID"] for s in summary["skipped"]] == ["broken"] and summary["utterances"] == 2
    assert "skipped broken" in capsys.readouterr().err
    good = write_csv(tmp_path / "good.csv", [rows[0], rows[2]])
    assert main(["--model", model, "--csv", good, "--json-out", str(tmp_path / "good.json")]) == 0
    assert json.loads((tmp_path / "good.json").read_text())["wer"] == summary["wer"]


def test_robust_all_empty_references_are_an_error(setup, tmp_path, capsys):
    model, rows, _, _ = setup
    manifest = write_csv(tmp_path / "test.csv", [{**row, "wrd": ""} for row in rows])
    assert main(["--model", model, "--csv", manifest]) == 2
    assert "every 'wrd' is empty" in capsys.readouterr().err


def test_robust_lowercase_references_score_as_uppercase(setup, tmp_path, monkeypatch):
    model, rows, _, _ = setup

    def perfect(self, wavs, wav_lens=None):  # a model that hears exactly the (upper-case) reference
        texts = [{12000: "HELLO WORLD", 14000: "ONE TWO", 16000: "YES"}[int(round(float(n) * wavs.shape[1]))]
                 for n in wav_lens]
        return [texts for _ in self.exit_layers]

    monkeypatch.setattr(EarlyExitASR, "recognize_every_exit", perfect)
    manifest = write_csv(tmp_path / "test.csv", [{**row, "wrd": row["wrd"].lower()} for row in rows])
    assert main(["--model", model, "--csv", manifest, "--json-out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["wer"] == [0.0] * 4
