"""Degraded evaluation sets (speechbrain_ee.data.degrade): each condition does
what it says, files are reproducible per utterance, bad input is a one-line error."""

import csv
import json
import math

import numpy as np
import pytest
import soundfile
import torch

from speechbrain_ee.data.degrade import (
    CONDITIONS,
    BandLimit,
    degrade,
    exponential_rir,
    long_term_spectrum,
    main,
    make_degraded_set,
    utterance_generator,
)
from speechbrain_ee.data.manifest import Utterance, write_manifest

RATE = 16000


def band_energy(wav, low_hz, high_hz):
    spectrum = np.abs(np.fft.rfft(np.asarray(wav, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(wav), 1 / RATE)
    return spectrum[(freqs >= low_hz) & (freqs < high_hz)].sum()


def speechlike(seconds=1.0, seed=0):
    """Harmonics of 150 Hz up to 7.5 kHz with a syllable-rate envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    wav = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 50))
    return (0.3 * wav / np.abs(wav).max() * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


@pytest.fixture
def manifest(tmp_path):
    rows = []
    for i in range(3):
        path = tmp_path / f"u{i}.wav"
        soundfile.write(path, speechlike(0.5 + 0.25 * i, seed=i), RATE)
        rows.append(Utterance(f"u{i}", str(path), "spk", "HELLO WORLD"))
    csv_path = tmp_path / "test.csv"
    write_manifest(rows, str(csv_path))
    return csv_path


def test_robust_8k_band_removes_the_upper_band_only():
    wav = torch.from_numpy(speechlike())
    out = degrade(wav, "8k-band")
    assert out.shape == wav.shape
    assert band_energy(out, 5000, 8000) < 1e-3 * band_energy(wav, 5000, 8000)  # sinc roll-off from 4 kHz
    assert band_energy(out, 100, 3500) == pytest.approx(band_energy(wav, 100, 3500), rel=0.02)


def test_robust_band_limit_lobe_in_a_batch():
    batch = torch.from_numpy(np.stack([speechlike(seed=0), speechlike(seed=1)]))
    out = BandLimit(RATE, [8000, 11025])(batch)
    assert out.shape == batch.shape
    assert band_energy(out[0], 6000, 8000) < 1e-3 * band_energy(batch[0], 6000, 8000)
    with pytest.raises(ValueError, match="band_rates"):
        BandLimit(RATE, [16000])


@pytest.mark.parametrize("condition", ["noise-10dB-white", "noise-10dB-speech"])
def test_robust_noise_is_at_10db_and_shaped(condition):
    wav = torch.from_numpy(speechlike())
    spectrum = torch.linspace(1.0, 0.0, 257) ** 4  # energy at low frequencies, as speech
    out = degrade(wav, condition, generator=torch.Generator().manual_seed(0), speech_spectrum=spectrum)
    speech = wav * out.dot(wav) / wav.dot(wav)
    noise = out - speech
    assert 20 * math.log10(speech.norm() / noise.norm()) == pytest.approx(10.0, abs=0.3)
    high_share = band_energy(noise, 4000, 8000) / band_energy(noise, 0, 8001)
    if condition.endswith("white"):
        assert high_share == pytest.approx(0.5, abs=0.05)
    else:  # the share of (1 - f/8k)^4 above 4 kHz: 0.5^5
        assert high_share == pytest.approx(0.5**5, abs=0.01)
    with pytest.raises(ValueError, match="needs speech_spectrum"):
        degrade(wav, "noise-10dB-speech")


def test_robust_far_is_quieter_and_reverberant():
    impulse = torch.zeros(RATE)
    impulse[100] = 0.5
    out = degrade(impulse, "far", generator=torch.Generator().manual_seed(0))
    assert out.shape == impulse.shape
    assert int(out.abs().argmax()) == 100  # the direct path stays in place
    tail = out[100 + RATE // 10:]  # 100 ms after the direct path: reverberation, not silence
    assert float(tail.abs().max()) > 1e-3 * float(out.abs().max())
    # reverberate keeps the mean absolute amplitude, then -20 dB
    assert float(out.abs().mean()) == pytest.approx(float(impulse.abs().mean()) * 0.1, rel=0.01)
    rir = exponential_rir(RATE, rt60=0.5, generator=torch.Generator().manual_seed(1))
    late = rir[int(0.45 * RATE):].abs().max() / rir[1:int(0.05 * RATE)].abs().max()
    assert float(late) < 10 ** (-40 / 20)  # decays by ~54 dB between 50 and 450 ms
    with pytest.raises(ValueError, match="rt60"):
        exponential_rir(RATE, rt60=0)


def test_robust_unknown_condition():
    with pytest.raises(ValueError, match="unknown condition 'phone'"):
        degrade(torch.zeros(100), "phone")


def test_robust_sets_are_reproducible_per_utterance(manifest, tmp_path):
    spectrum = long_term_spectrum([str(manifest.parent / "u0.wav")])
    out = tmp_path / "sets"
    for condition in CONDITIONS:
        path = make_degraded_set(str(manifest), str(out), condition, seed=3, speech_spectrum=spectrum)
        rows = list(csv.DictReader(open(path)))
        assert [r["ID"] for r in rows] == ["u0", "u1", "u2"] and rows[0]["wrd"] == "HELLO WORLD"
        if condition == "clean":
            assert rows[0]["wav"] == str(manifest.parent / "u0.wav")
            continue
        audio, rate = soundfile.read(rows[1]["wav"])
        assert rate == RATE and len(audio) == int(0.75 * RATE)
        assert soundfile.info(rows[1]["wav"]).subtype == "PCM_16"
    noisy = soundfile.read(out / "noise-10dB-white" / "u1.wav")[0]
    again = make_degraded_set(str(manifest), str(tmp_path / "again"), "noise-10dB-white", seed=3)
    assert np.array_equal(soundfile.read(tmp_path / "again" / "noise-10dB-white" / "u1.wav")[0], noisy)
    other_seed = degrade(torch.from_numpy(speechlike()), "noise-10dB-white",
                         generator=utterance_generator(4, "noise-10dB-white", "u1"))
    same_seed = degrade(torch.from_numpy(speechlike()), "noise-10dB-white",
                        generator=utterance_generator(3, "noise-10dB-white", "u1"))
    assert not torch.allclose(other_seed, same_seed)
    assert again.endswith("noise-10dB-white.csv")


def test_robust_command_line(manifest, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--csv", str(manifest), "--spectrum-csv", str(manifest), "--output", str(out),
                 "--conditions", "8k-band", "noise-10dB-speech"]) == 0
    assert (out / "test" / "8k-band.csv").is_file() and (out / "speech_spectrum.json").is_file()
    made = json.loads((out / "degrade.json").read_text())
    assert made["command"].startswith("python -m speechbrain_ee.data.degrade --csv") and made["seed"] == 0
    assert main(["--csv", str(manifest), "--output", str(out), "--conditions", "noise-10dB-speech"]) == 2
    assert "needs --spectrum-csv" in capsys.readouterr().err
    assert main(["--csv", str(tmp_path / "missing.csv"), "--output", str(out), "--conditions", "far"]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["--an4", str(tmp_path / "no_an4"), "--output", str(out)]) == 2
    assert "AN4 data folder not found" in capsys.readouterr().err


def test_robust_an4_test_sets(an4_dir, tmp_path):
    """Real AN4: two test utterances under every condition, readable by the model's loader."""
    from speechbrain_ee.data.an4 import prepare_an4
    from speechbrain_ee.data.audio import load_audio

    manifests = prepare_an4(str(an4_dir), str(tmp_path / "manifests"))
    rows = list(csv.DictReader(open(manifests["test"])))[:2]
    small = tmp_path / "small.csv"
    write_manifest([Utterance(r["ID"], r["wav"], r["spk_id"], r["wrd"]) for r in rows], str(small))
    spectrum = long_term_spectrum([r["wav"] for r in rows])
    for condition in CONDITIONS[1:]:
        path = make_degraded_set(str(small), str(tmp_path / "sets"), condition, speech_spectrum=spectrum)
        for row, original in zip(csv.DictReader(open(path)), rows):
            clean, wav = load_audio(original["wav"]), load_audio(row["wav"])
            assert wav.shape == clean.shape and torch.isfinite(wav).all()
            assert not torch.allclose(wav, clean, atol=1e-3)
