"""TED-LIUM 3 preparation on a legacy-layout corpus (STM + SPHERE talks of real speech)."""

import csv
import json

import pytest
import soundfile

from speechbrain_ee.data.audio import load_audio_segment
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.data.tedlium import normalize_stm_words, prepare_tedlium


def test_tedlium_segments_by_offset(tedlium_corpus, tmp_path, caplog):
    root, expected, awkward = tedlium_corpus
    paths = prepare_tedlium(root, tmp_path)
    report = json.loads((tmp_path / "preparation.json").read_text())["splits"]
    for split, planted in expected.items():
        rows = list(csv.DictReader(open(paths[split])))
        got = [(r["wav"].rsplit("/", 1)[1][:-4], float(r["start"]), float(r["stop"]), r["wrd"]) for r in rows]
        assert got == planted  # ignore_time_segment_in_scoring left out, "he 's" joined, <unk> removed
        talks = len({p[0] for p in planted})
        assert sum(report[split]["skipped"].values()) == awkward * talks
        assert report[split]["skipped"]["segment outside the audio"] == talks
    assert ":7: segment" in caplog.text and "outside the audio" in caplog.text  # names the STM line

    # the segment read by offset is the planted utterance, sample for sample
    row = next(csv.DictReader(open(paths["dev"])))
    talk, rate = soundfile.read(row["wav"], dtype="float32")
    segment = load_audio_segment(row["wav"], row["start"], row["stop"], rate)
    first = round(float(row["start"]) * rate)
    assert segment.numpy() == pytest.approx(talk[first:first + len(segment)])


def test_tedlium_unk_policy_and_partition(tedlium_corpus, tmp_path):
    root, expected, _ = tedlium_corpus
    paths = prepare_tedlium(root, tmp_path, unk="skip", max_duration=15.0)
    report = json.loads((tmp_path / "preparation.json").read_text())["splits"]
    assert report["dev"]["skipped"]["<unk> in the transcript"] == 1
    train = [float(r["duration"]) for r in csv.DictReader(open(paths["train"]))]
    assert max(train) <= 15.0
    talks = sorted({p[0] for p in expected["train"]})
    without_unk = [p for talk in talks for i, p in enumerate(q for q in expected["train"] if q[0] == talk) if i != 1]
    over = sum(1 for p in without_unk if p[2] - p[1] > 15.0)
    assert over and report["train"]["skipped"]["longer than max_duration"] == over
    assert report["train"]["skipped"]["<unk> in the transcript"] == len(talks)
    assert report["dev"]["utterances"] == len(expected["dev"]) - 1  # dev keeps long segments
    with pytest.raises(DataPreparationError, match=r"missing folder\(s\) .*speaker-adaptation/train/stm"):
        prepare_tedlium(root, tmp_path / "sa", partition="speaker-adaptation")


def test_tedlium_stm_words():
    assert normalize_stm_words("i 'm here {BREATH} and they 've <unk> gone") == "i'm here and they've gone"
