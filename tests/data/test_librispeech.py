"""LibriSpeech preparation on the real subsets, checked against lhotse's
own parser, and on a damaged copy of the layout."""

import csv
import json
import os

import pytest
from lhotse.recipes import prepare_librispeech as lhotse_prepare_librispeech

from speechbrain_ee.data.librispeech import prepare_librispeech
from speechbrain_ee.data.manifest import DataPreparationError

SPLITS = dict(train_splits=["train-clean-5"], dev_splits=["dev-clean-2"], test_splits=["dev-clean-2"])


def rows(path):
    return list(csv.DictReader(open(path)))


def test_librispeech_manifests_match_lhotse(librispeech_dir, tmp_path):
    paths = prepare_librispeech(librispeech_dir, tmp_path, **SPLITS)
    assert set(paths) == {"train", "dev", "dev-clean-2"}
    ours = {r["ID"]: r for r in rows(paths["train"])}
    reference = lhotse_prepare_librispeech(librispeech_dir, dataset_parts="train-clean-5")["train-clean-5"]
    supervisions = {s.id: s for s in reference["supervisions"]}
    assert set(ours) == set(supervisions) and len(ours) == 96
    for uid, sup in supervisions.items():
        assert ours[uid]["wrd"] == sup.text
        assert ours[uid]["spk_id"] == sup.speaker
        assert float(ours[uid]["duration"]) == pytest.approx(sup.duration, abs=1e-3)
        assert os.path.samefile(ours[uid]["wav"], reference["recordings"][uid].sources[0].source)
    report = json.loads((tmp_path / "preparation.json").read_text())
    assert report["splits"]["dev"]["utterances"] == len(rows(paths["dev"])) == 10


def test_librispeech_bad_rows_are_skipped_and_counted(librispeech_dir, tmp_path, caplog):
    chapter = librispeech_dir / "train-clean-5" / "32" / "21631"
    copy = tmp_path / "LibriSpeech" / "train-clean-5" / "32" / "21631"
    copy.mkdir(parents=True)
    lines = (chapter / "32-21631.trans.txt").read_text().splitlines()[:4]
    for line in lines:
        uid = line.split()[0]
        os.symlink(chapter / f"{uid}.flac", copy / f"{uid}.flac")
    (copy / "32-21631-9000.flac").write_bytes(b"fLaC broken")
    os.symlink(chapter / "32-21631-0000.flac", copy / "32-21631-9002.flac")
    lines += ["32-21631-9000 UNREADABLE AUDIO", "32-21631-9001 NO SUCH FILE", "32-21631-0000",
              "32-21631-9002 IN 1848 \ufffd", lines[0]]
    (copy / "32-21631.trans.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "LibriSpeech" / "dev-clean-2").mkdir()
    os.symlink(librispeech_dir / "dev-clean-2" / "1988", tmp_path / "LibriSpeech" / "dev-clean-2" / "1988")

    paths = prepare_librispeech(tmp_path / "LibriSpeech", tmp_path / "out", max_duration=14.0, **SPLITS)
    kept = rows(paths["train"])
    report = json.loads((tmp_path / "out" / "preparation.json").read_text())["splits"]["train"]
    skipped = report["skipped"]
    assert sum(skipped.values()) + len(kept) == 9
    assert skipped["audio file missing or unreadable"] == 2
    assert skipped["malformed line"] == 1  # an ID without text
    assert skipped["transcript empty or outside the alphabet (A-Z, apostrophe)"] == 1
    assert skipped["duplicate utterance ID"] == 1
    durations = [float(r["duration"]) for r in kept]
    assert max(durations) <= 14.0 and skipped.get("longer than max_duration", 0) == 4 - len(kept)
    assert f"{copy / '32-21631.trans.txt'}:5: unreadable audio file" in caplog.text
    assert f"{copy / '32-21631.trans.txt'}:6: audio file not found" in caplog.text
    assert f"{copy / '32-21631.trans.txt'}:7: no transcript after the utterance ID" in caplog.text
    assert f"{copy / '32-21631.trans.txt'}:8 (32-21631-9002): transcript empty or outside" in caplog.text


def test_librispeech_missing_split_folder(librispeech_dir, tmp_path):
    with pytest.raises(DataPreparationError, match=r"LibriSpeech: missing folder\(s\) .*train-clean-100"):
        prepare_librispeech(librispeech_dir, tmp_path, train_splits=["train-clean-5", "train-clean-100"],
                            dev_splits=["dev-clean-2"], test_splits=[])
    assert not list(tmp_path.iterdir())  # stopped before writing anything
