"""``sbee evaluate`` on a tiny random model: its table is the inference API's
transcripts scored, its outputs are written where asked."""

import csv
import json
import pathlib

import numpy
import pytest
import soundfile
from speechbrain.utils.metric_stats import ErrorRateStats

from speechbrain_ee.cli.evaluate import main
from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.testing import write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]
WORDS = ["HELLO WORLD", "ONE TWO THREE", "YES", "ERASE C Q Q F SEVEN", "STOP GO"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    model = write_random_model_dir(str(tmp / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"))
    rng = numpy.random.default_rng(0)
    rows = []
    for i, words in enumerate(WORDS):
        path = tmp / f"u{i}.wav"
        seconds = 0.5 + 0.2 * ((i * 3) % 5)
        soundfile.write(path, 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
        rows.append({"ID": f"u{i}", "duration": f"{seconds:.2f}", "wav": str(path), "spk_id": "s", "wrd": words})
    manifest = tmp / "test.csv"
    write_csv(manifest, rows)
    return model, manifest, rows, tmp


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_table_scores_the_inference_api_at_every_exit(setup, tmp_path, capsys):
    model, manifest, rows, _ = setup
    summary_path = tmp_path / "summary.json"
    assert main(["--model", model, "--csv", str(manifest), "--batch-size", "2", "--beam-size", "2",
                 "--json-out", str(summary_path), "--output", str(tmp_path / "hyps.tsv"),
                 "--output-dir", str(tmp_path / "wer")]) == 0
    summary = json.loads(summary_path.read_text())
    assert "exit layer   WER %   CER %" in capsys.readouterr().out
    assert summary["exit_layers"] == [1, 2, 3, 4] and summary["utterances"] == len(rows)
    assert summary["command"].startswith("sbee evaluate --model") and summary["skipped"] == []
    # each exit's WER is that of the files transcribed one by one at that fixed exit
    asr = EarlyExitASR.from_hparams(model, savedir=str(tmp_path / "asr"), beam_size=2)
    for exit_index, wer in enumerate(summary["wer"]):
        stats = ErrorRateStats()
        for row in rows:
            text = asr.transcribe_file(row["wav"], exit=exit_index)
            stats.append([row["ID"]], [text.split()], [row["wrd"].split()])
        assert wer == round(stats.summarize("error_rate"), 3)
    with open(tmp_path / "hyps.tsv", newline="") as handle:
        hyps = list(csv.DictReader(handle, delimiter="\t"))
    assert sorted(h["ID"] for h in hyps) == sorted(r["ID"] for r in rows)
    assert list(hyps[0]) == ["ID", "wrd", "exit1", "exit2", "exit3", "exit4"]
    for layer in (1, 2, 3, 4):
        assert (tmp_path / "wer" / f"wer_test_exit{layer}.txt").is_file()
    assert json.loads((tmp_path / "wer" / "exit_summary_test.json").read_text())["wer"] == summary["wer"]


def test_jsonl_hypotheses_and_attention_only_flags(setup, tmp_path, capsys):
    model, manifest, rows, _ = setup
    out = tmp_path / "hyps.jsonl"
    assert main(["--model", model, "--csv", str(manifest), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(rows) and set(lines[0]["hyp"]) == {"1", "2", "3", "4"}
    capsys.readouterr()
    assert main(["--model", model, "--csv", str(manifest), "--ctc-weight", "0.5"]) == 2
    assert "apply to attention models" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--csv", str(manifest)]) == 2
    assert "not a model directory" in capsys.readouterr().err
