import csv
import shutil

import pytest

from speechbrain_ee.data.an4 import parse_transcription, prepare_an4
from speechbrain_ee.data.manifest import DataPreparationError


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_prepare_real_an4(an4_dir, tmp_path):
    paths = prepare_an4(str(an4_dir), str(tmp_path))
    train, dev, test = (read_rows(paths[s]) for s in ("train", "dev", "test"))
    assert len(train) + len(dev) == 948
    assert len(test) == 130
    assert set(train[0]) == {"ID", "duration", "wav", "spk_id", "wrd"}
    assert not {r["spk_id"] for r in train} & {r["spk_id"] for r in dev}, "dev speakers held out"
    assert len({r["spk_id"] for r in dev}) == 6
    assert all("<s>" not in r["wrd"] and r["wrd"] == r["wrd"].upper() for r in train)
    row = next(r for r in test if r["ID"] == "an406-fcaw-b")
    assert row["wrd"] == "RUBOUT G M E F THREE NINE"
    assert 0.5 < float(row["duration"]) < 10


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataPreparationError, match="AN4 data folder not found: .*nowhere"):
        prepare_an4(str(tmp_path / "nowhere"), str(tmp_path / "out"))


def make_fake_an4(root, an4_dir, drop_transcript=False, empty_audio=False):
    (root / "etc").mkdir(parents=True)
    for split, folder in (("train", "an4_clstk"), ("test", "an4test_clstk")):
        all_ids = (an4_dir / "etc" / f"an4_{split}.fileids").read_text().split()
        ids = all_ids[:: len(all_ids) // 8][:8]  # several speakers
        (root / "etc" / f"an4_{split}.fileids").write_text("\n".join(ids) + "\n")
        lines = [line for line in (an4_dir / "etc" / f"an4_{split}.transcription").read_text().splitlines()
                 if any(f"({i.split('/')[-1]})" in line for i in ids)]
        if drop_transcript and split == "train":
            lines = lines[1:]
        (root / "etc" / f"an4_{split}.transcription").write_text("\n".join(lines) + "\n")
        for fileid in ids:
            dest = root / "wav" / (fileid + ".sph")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(an4_dir / "wav" / (fileid + ".sph"), dest)
    if empty_audio:
        victim = sorted((root / "wav" / "an4test_clstk").rglob("*.sph"))[0]
        victim.write_bytes(b"")
        return victim


def test_missing_transcript_names_the_utterance(an4_dir, tmp_path):
    make_fake_an4(tmp_path / "an4", an4_dir, drop_transcript=True)
    with pytest.raises(DataPreparationError, match=r"no transcript for an\S+ \(listed in .*an4_train.fileids\)"):
        prepare_an4(str(tmp_path / "an4"), str(tmp_path / "out"), dev_speakers=1)


def test_bad_audio_raises_or_is_skipped(an4_dir, tmp_path):
    victim = make_fake_an4(tmp_path / "an4", an4_dir, empty_audio=True)
    with pytest.raises(DataPreparationError, match=str(victim.name)):
        prepare_an4(str(tmp_path / "an4"), str(tmp_path / "out"), dev_speakers=1)
    paths = prepare_an4(str(tmp_path / "an4"), str(tmp_path / "out2"), dev_speakers=1, on_bad_audio="skip")
    assert len(read_rows(paths["test"])) == 7


def test_parse_transcription_rejects_garbage(tmp_path):
    bad = tmp_path / "x.transcription"
    bad.write_text("<s> HELLO </s> (utt1)\nthis line has no id\n")
    with pytest.raises(DataPreparationError, match=r"x.transcription:2"):
        parse_transcription(str(bad))
