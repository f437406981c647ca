"""``sbee transcribe``: the output is checked before the work and written as
results come, so a failure later keeps what was done."""

import pathlib

import numpy
import pytest
import soundfile

from speechbrain_ee.cli.transcribe import main
from speechbrain_ee.inference.interfaces import EarlyExitASR
from speechbrain_ee.testing import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transcribe_robust")
    model = write_random_model_dir(str(tmp / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    rng = numpy.random.default_rng(0)
    files = []
    for i in range(3):
        files.append(str(tmp / f"f{i}.wav"))
        soundfile.write(files[-1], 0.1 * rng.standard_normal(8000 + 1000 * i), 16000)
    return model, files


def test_robust_unwritable_output_fails_before_the_work(setup, tmp_path, capsys, monkeypatch):
    model, files = setup

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(EarlyExitASR, "from_hparams", refuse)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["--model", model, *files, "--output", str(blocker / "out.tsv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write --output {blocker / 'out.tsv'}")


def test_robust_results_are_written_as_they_come(setup, tmp_path, monkeypatch):
    model, files = setup
    calls = []
    recognize = EarlyExitASR.recognize_batch

    def fail_on_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the machine went away")
        return recognize(self, *args, **kwargs)

    monkeypatch.setattr(EarlyExitASR, "recognize_batch", fail_on_second_batch)
    out = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError, match="went away"):
        main(["--model", model, *files, "--batch-size", "1", "--exit", "0", "--output", str(out), "--no-progress"])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("path\ttext") and len(lines) == 2 and lines[1].startswith(files[0] + "\t")
