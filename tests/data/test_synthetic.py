import csv
import sys

import numpy as np
import pytest
import soundfile

from speechbrain_ee.data import synthetic
from speechbrain_ee.data.espeak import Espeak, EspeakError, default_paths, get_espeak
from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.data.synthetic import (
    VOCABULARY,
    plan_corpus,
    prepare_synthetic,
    split_voices,
)

SIZES = dict(num_train=8, num_dev=3, num_test=3)


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    paths = prepare_synthetic(str(folder), seed=7, **SIZES)
    return folder, {split: read_rows(path) for split, path in paths.items()}


def test_manifests_and_audio(corpus):
    _, rows = corpus
    assert {s: len(r) for s, r in rows.items()} == {"train": 8, "dev": 3, "test": 3}
    for split_rows in rows.values():
        for row in split_rows:
            assert list(row) == ["ID", "duration", "wav", "spk_id", "wrd"]
            assert set(row["wrd"].split()) <= set(VOCABULARY)
            wav, rate = soundfile.read(row["wav"])
            assert rate == 16000 and wav.ndim == 1
            duration = len(wav) / rate
            assert float(row["duration"]) == pytest.approx(duration, abs=1e-3)
            words = len(row["wrd"].split())
            # a letter or digit takes 0.15 s to 1 s; plus up to 0.8 s of silence
            assert 0.15 * words < duration < 1.0 * words + 1.0, (row, duration)
            frames = wav[: len(wav) // 400 * 400].reshape(-1, 400)
            level = np.sqrt((frames ** 2).mean(axis=1))
            assert level.max() > 0.03, f"inaudible: {row}"
            assert level.max() > 2 * np.median(level[:2]), f"no speech above the noise floor: {row}"


def test_held_out_voices(corpus):
    _, rows = corpus
    variant = {s: {r["spk_id"].split("+")[1] for r in split_rows} for s, split_rows in rows.items()}
    assert not variant["train"] & variant["dev"]
    assert not variant["train"] & variant["test"]
    assert not variant["dev"] & variant["test"]
    assert len({r["spk_id"] for r in rows["train"]}) > 4, "many speakers in training"


def long_term_spectrum(samples):
    frames = samples[: len(samples) // 512 * 512].reshape(-1, 512).astype(np.float64)
    return np.log(np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)).mean(axis=0) + 1e-3)


def test_voices_sound_different():
    tts = get_espeak()
    text = "B C D SEVEN EIGHT"
    male = long_term_spectrum(tts.synthesize(text, "en-US+m3"))
    again = long_term_spectrum(tts.synthesize(text, "en-US+m3"))
    female = long_term_spectrum(tts.synthesize(text, "en-US+f2"))
    whisper = long_term_spectrum(tts.synthesize(text, "en-US+whisper"))
    same = np.abs(male - again).mean()
    assert np.abs(male - female).mean() > 3 * same
    assert np.abs(male - whisper).mean() > 3 * same


def test_deterministic_given_seed(corpus, tmp_path):
    _, first = corpus
    again = {s: read_rows(p) for s, p in prepare_synthetic(str(tmp_path / "a"), seed=7, **SIZES).items()}
    other = {s: read_rows(p) for s, p in prepare_synthetic(str(tmp_path / "b"), seed=8, **SIZES).items()}
    for split in first:
        fields = [(r["ID"], r["spk_id"], r["wrd"]) for r in first[split]]
        assert fields == [(r["ID"], r["spk_id"], r["wrd"]) for r in again[split]]
        # eSpeak renders a few samples differently from run to run, not more
        for a, b in zip(first[split], again[split]):
            assert float(a["duration"]) == pytest.approx(float(b["duration"]), abs=0.05)
    assert [r["wrd"] for r in first["train"]] != [r["wrd"] for r in other["train"]]


def test_plan_is_a_function_of_the_seed():
    sizes = {"train": 20, "dev": 5, "test": 5}
    accents, variants = ["en", "en-US"], [f"v{i}" for i in range(10)]
    assert plan_corpus(sizes, 3, accents, variants, 2, 2) == plan_corpus(sizes, 3, accents, variants, 2, 2)
    assert plan_corpus(sizes, 3, accents, variants, 2, 2) != plan_corpus(sizes, 4, accents, variants, 2, 2)
    # a bigger corpus starts with the same utterances
    bigger = plan_corpus({"train": 30, "dev": 5, "test": 5}, 3, accents, variants, 2, 2)
    assert bigger["train"][:20] == plan_corpus(sizes, 3, accents, variants, 2, 2)["train"]


def test_skips_when_prepared(corpus, monkeypatch):
    folder, rows = corpus
    monkeypatch.setattr(synthetic, "get_espeak", lambda: pytest.fail("synthesised again"))
    paths = prepare_synthetic(str(folder), seed=7, **SIZES)
    assert read_rows(paths["train"]) == rows["train"]


def test_other_settings_are_not_skipped(corpus, monkeypatch):
    folder, _ = corpus
    monkeypatch.setattr(synthetic, "get_espeak", lambda: pytest.fail("synthesising"))
    with pytest.raises(pytest.fail.Exception, match="synthesising"):
        prepare_synthetic(str(folder), seed=7, num_train=9, num_dev=3, num_test=3)


def test_clear_errors(tmp_path, monkeypatch):
    _, data_path = default_paths()
    with pytest.raises(EspeakError, match="cannot load the eSpeak NG library .*nowhere.so"):
        Espeak(str(tmp_path / "nowhere.so"), data_path)
    with pytest.raises(EspeakError, match="voice data folder not found"):
        Espeak(None, str(tmp_path / "no-data"))
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(EspeakError, match="pip install espeakng-loader"):
        default_paths()
    with pytest.raises(EspeakError, match="no voice named 'xx-nowhere'"):
        get_espeak().synthesize("A", "xx-nowhere")
    with pytest.raises(DataPreparationError, match="cannot hold out 5 for dev and 5 for test"):
        split_voices(["a", "b", "c"], 5, 5, seed=0)
    with pytest.raises(ValueError, match="num_dev must be at least 1"):
        prepare_synthetic(str(tmp_path), num_dev=0)
