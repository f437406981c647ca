import numpy as np
import pytest
import soundfile

from speechbrain_ee.data.audio import AudioError, load_audio
from speechbrain_ee.data.manifest import DataPreparationError, Utterance, read_manifest, write_manifest


@pytest.fixture
def wavs(tmp_path):
    good = tmp_path / "good.wav"
    soundfile.write(good, 0.1 * np.random.randn(16000), 16000)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(100), 16000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0), 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    return {"good": good, "short": short, "empty": empty, "garbage": garbage, "missing": tmp_path / "missing.wav"}


@pytest.mark.parametrize("kind,message", [
    ("missing", "audio file not found"),
    ("garbage", "unreadable audio file"),
    ("empty", "empty audio file"),
    ("short", "audio shorter than"),
])
def test_bad_audio_is_named(wavs, tmp_path, kind, message):
    out = tmp_path / "train.csv"
    out.write_text("ID,duration,wav,spk_id,wrd\nold,1.0,x.wav,s,KEEP ME\n")
    utts = [Utterance("a", str(wavs["good"]), "s", "A"), Utterance("b", str(wavs[kind]), "s", "B")]
    with pytest.raises(DataPreparationError, match=message) as err:
        write_manifest(utts, str(out), min_duration=0.05)
    assert str(wavs[kind]) in str(err.value)
    assert "KEEP ME" in out.read_text(), "an existing manifest survives the failure"
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


def test_skip_mode_counts_and_keeps_good(wavs, tmp_path, caplog):
    utts = [Utterance(k, str(v), "s", "WORD") for k, v in wavs.items()]
    rows = write_manifest(utts, str(tmp_path / "m.csv"), min_duration=0.05, on_bad_audio="skip")
    assert [r.ID for r in rows] == ["good"]
    assert "4 utterances skipped" in caplog.text
    assert read_manifest(str(tmp_path / "m.csv"))[0]["wrd"] == "WORD"


def test_empty_transcript(wavs, tmp_path):
    with pytest.raises(DataPreparationError, match="empty transcript for utterance x"):
        write_manifest([Utterance("x", str(wavs["good"]), "s", "  ")], str(tmp_path / "m.csv"))


def test_read_manifest_errors(tmp_path):
    with pytest.raises(DataPreparationError, match="manifest not found"):
        read_manifest(str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,path\n1,x\n")
    with pytest.raises(DataPreparationError, match=r"lacks the column\(s\) \['wav', 'wrd'\]"):
        read_manifest(str(bad))


def test_load_audio_errors(wavs):
    for kind, message in [("missing", "cannot read"), ("garbage", "cannot read"), ("empty", "empty audio")]:
        with pytest.raises(AudioError, match=message):
            load_audio(str(wavs[kind]))
    with pytest.raises(AudioError, match="too short"):
        load_audio(str(wavs["short"]), min_samples=400)
    assert load_audio(str(wavs["good"])).shape == (16000,)
