"""VoxPopuli-en preparation in both layouts users have: the clips and TSVs
of the official get_asr_data, and the session recordings read by offset."""

import csv
import json

import pytest

from speechbrain_ee.data.audio import load_audio, load_audio_segment
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.data.voxpopuli import prepare_voxpopuli


def test_voxpopuli_get_asr_data_layout(voxpopuli_corpus, tmp_path, caplog):
    root, expected, awkward = voxpopuli_corpus
    paths = prepare_voxpopuli(root, tmp_path)
    report = json.loads((tmp_path / "preparation.json").read_text())["splits"]
    for split, planted in expected.items():
        rows = list(csv.DictReader(open(paths[split])))
        assert {r["ID"]: r["wrd"] for r in rows} == planted
        assert "start" not in rows[0]  # whole clips
        assert report[split]["skipped"] == {
            "audio file missing or unreadable": 2, "malformed line": 1,
            "transcript empty or outside the alphabet (A-Z, apostrophe)": 1,
        } and sum(report[split]["skipped"].values()) == awkward
    assert "asr_train.tsv:" in caplog.text and "4 fields where the header has 6" in caplog.text
    assert "asr_test.tsv:10 (" in caplog.text and "outside the alphabet (A-Z, apostrophe): 'in 2019'" in caplog.text
    # the transcribed_data/en folder itself is accepted too
    again = prepare_voxpopuli(root / "transcribed_data" / "en", tmp_path / "direct")
    assert open(again["test"]).read() == open(paths["test"]).read()


def test_voxpopuli_sessions_read_by_offset(an4_dir, tmp_path):
    from corpus_layouts import build_voxpopuli_sessions

    root = tmp_path / "voxpopuli"
    expected, awkward = build_voxpopuli_sessions(root, an4_dir)
    paths = prepare_voxpopuli(root, tmp_path / "out", max_duration=4.0)
    report = json.loads((tmp_path / "out" / "preparation.json").read_text())["splits"]
    for split, planted in expected.items():
        rows = list(csv.DictReader(open(paths[split])))
        kept = [(float(r["start"]), float(r["stop"]), r["wrd"]) for r in rows]
        limit = 4.0 if split == "train" else float("inf")
        assert kept == [p for p in planted if p[1] - p[0] <= limit]
        skipped = report[split]["skipped"]
        assert skipped.pop("longer than max_duration", 0) == len(planted) - len(kept)
        assert skipped == {"segment outside the audio": 1, "audio file missing or unreadable": 1,
                           "malformed line": 1}
    row = next(csv.DictReader(open(paths["test"])))
    segment = load_audio_segment(row["wav"], row["start"], row["stop"])
    assert abs(len(segment) / 16000 - float(row["duration"])) < 1e-3
    assert float(segment.abs().max()) > 0.01  # speech, not the silence between utterances
    whole = load_audio(row["wav"])
    assert len(whole) > len(segment)


def test_voxpopuli_nothing_found(tmp_path):
    with pytest.raises(DataPreparationError, match="VoxPopuli \\(en\\) not found in .*get_asr_data"):
        prepare_voxpopuli(tmp_path, tmp_path / "out")


def test_voxpopuli_lhotse_layout_matches_lhotse(an4_dir, tmp_path):
    """Sessions in lhotse's ``raw_audios/en`` layout: the same segments as
    lhotse's own ``prepare_voxpopuli`` (given the table, so nothing is downloaded)."""
    import gzip
    import shutil

    from lhotse.recipes import prepare_voxpopuli as lhotse_prepare_voxpopuli

    from corpus_layouts import build_voxpopuli_sessions

    root = tmp_path / "voxpopuli"
    build_voxpopuli_sessions(root, an4_dir)
    for session in (root / "raw_audios" / "original").rglob("*_original.ogg"):
        target = root / "raw_audios" / "en" / session.parent.name / session.name.replace("_original", "_en")
        target.parent.mkdir(parents=True, exist_ok=True)
        session.rename(target)
    shutil.rmtree(root / "raw_audios" / "original")
    lines = gzip.open(root / "asr_en.tsv.gz", "rt").read().splitlines()
    clean = [lines[0]] + [line for line in lines[1:] if line.count("|") == 8 and "NO-SUCH" not in line
                          and "past the end" not in line]
    with gzip.open(root / "asr_en.tsv.gz", "wt") as handle:
        handle.write("\n".join(clean) + "\n")
    lhotse_dir = tmp_path / "lhotse"
    lhotse_dir.mkdir()
    shutil.copy(root / "asr_en.tsv.gz", lhotse_dir / "asr_en.tsv.gz")

    ours = prepare_voxpopuli(root, tmp_path / "out")
    reference = lhotse_prepare_voxpopuli(root, output_dir=lhotse_dir, task="asr", lang="en")
    for split in ("train", "dev", "test"):
        rows = list(csv.DictReader(open(ours[split])))
        sups = sorted(reference[split]["supervisions"], key=lambda s: (s.recording_id, s.start))
        assert [(float(r["start"]), float(r["duration"]), r["wrd"]) for r in rows] == [
            (pytest.approx(s.start, abs=1e-3), pytest.approx(s.duration, abs=1e-3), s.text.upper()) for s in sups]
