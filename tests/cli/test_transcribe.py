"""``sbee transcribe`` (and ``sbee-transcribe``)."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy
import pytest
import soundfile

from speechbrain_ee.testing import write_random_model_dir
from speechbrain_ee.cli.transcribe import main

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    model = write_random_model_dir(str(tmp / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    rng = numpy.random.default_rng(0)
    files = []
    for i, (samples, rate, channels) in enumerate([(9000, 16000, 1), (6000, 8000, 2), (20000, 16000, 1)]):
        files.append(str(tmp / f"f{i}.wav"))
        soundfile.write(files[-1], 0.1 * rng.standard_normal((samples, channels)), rate)
    bad = str(tmp / "bad.wav")
    pathlib.Path(bad).write_text("not audio")
    return model, files, bad, tmp


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_files_to_tsv_with_fixed_exit(setup, capsys):
    model, files, _, tmp = setup
    out = tmp / "out.tsv"
    assert main(["--model", model, *files, "--exit", "1", "--output", str(out)]) == 0
    rows = read_tsv(out)
    assert [r["path"] for r in rows] == files
    assert {(r["exit_index"], r["exit_layer"], r["error"]) for r in rows} == {("1", "2", "")}
    assert "file" in capsys.readouterr().err, "a progress bar for several files"


def test_csv_input_to_jsonl_with_selector(setup):
    model, files, _, tmp = setup
    manifest = tmp / "list.csv"
    manifest.write_text("ID,wav\n" + "".join(f"u{i},{f}\n" for i, f in enumerate(files)))
    out = tmp / "out.jsonl"
    assert main(["--model", model, "--csv", str(manifest), "--selector", "confidence",
                 "--threshold", "0", "--topk", "2", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == files
    assert all(r["exit_index"] == 0 and r["exit_layer"] == 1 and isinstance(r["text"], str) for r in rows)


def test_bad_file_is_reported_and_the_rest_goes_on(setup, capsys):
    model, files, bad, tmp = setup
    out = tmp / "with_bad.tsv"
    assert main(["--model", model, files[0], bad, files[1], "--output", str(out), "--no-progress"]) == 1
    rows = read_tsv(out)
    assert [r["error"] == "" for r in rows] == [True, False, True]
    assert rows[2]["exit_layer"] == "4"
    err = capsys.readouterr().err
    assert bad in err and "1 of 3 files" in err


@pytest.mark.parametrize("args, message", [
    (["--selector", "entropy", "--threshold", "nan"], "argument --threshold: must be a finite number"),
    (["--exit", "7"], "not an exit"),
    (["--selector", "confidence", "--threshold", "0.5", "--topk", "0"], "topk"),
    (["--selector", "entropy", "--threshold", "0.1", "--topk", "5"], "only applies"),
    (["--selector", "patience"], "needs a value"),
])
def test_bad_arguments(setup, capsys, args, message):
    model, files, _, _ = setup
    assert main(["--model", model, files[0], *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_and_no_audio(setup, capsys):
    model, files, _, tmp = setup
    assert main(["--model", str(tmp / "nowhere"), files[0]]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert main(["--model", model]) == 2
    assert "no audio" in capsys.readouterr().err


def test_module_entry_point_prints_tsv(setup):
    model, files, _, _ = setup
    done = subprocess.run(
        [sys.executable, "-m", "speechbrain_ee", "transcribe", "--model", model, files[2], "--exit", "0"],
        capture_output=True, text=True, cwd=REPO, env={"OMP_NUM_THREADS": "1", "PATH": ""}, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["path", "text", "exit_index", "exit_layer", "error"]
    assert lines[1].startswith(files[2] + "\t") and lines[1].split("\t")[2:4] == ["0", "1"]
