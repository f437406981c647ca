"""load_audio on broken and unusual files: nothing silently wrong."""

import warnings

import numpy
import pytest
import soundfile
import torch

from speechbrain_ee.data.audio import AudioError, AudioWarning, declared_frames, is_silent, load_audio


def write(tmp_path, name, data, rate=16000, subtype=None):
    path = str(tmp_path / name)
    soundfile.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf])
def test_robust_non_finite_samples_are_an_error_naming_the_file(tmp_path, bad):
    data = numpy.zeros(16000, dtype=numpy.float32)
    data[100] = bad
    path = write(tmp_path, "bad.wav", data, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad\.wav has 1 non-finite"):
        load_audio(path)


def test_robust_float_samples_out_of_range_are_peak_normalised(tmp_path):
    data = (numpy.sin(numpy.arange(16000) / 10) * 20000).astype(numpy.float32)
    path = write(tmp_path, "loud.wav", data, subtype="FLOAT")
    with pytest.warns(AudioWarning, match=r"loud\.wav: samples up to .* peak-normalised"):
        wav = load_audio(path)
    assert wav.abs().max().item() == pytest.approx(1.0)
    assert torch.allclose(wav, torch.from_numpy(data) / 20000, atol=1e-4)


def test_robust_clipping_is_warned(tmp_path):
    data = numpy.clip(numpy.sin(numpy.arange(16000) / 10) * 3, -1, 1)
    path = write(tmp_path, "clipped.wav", data)
    with pytest.warns(AudioWarning, match=r"clipped\.wav: .* full scale"):
        load_audio(path)


def test_robust_ordinary_audio_gives_no_warning(tmp_path):
    path = write(tmp_path, "fine.wav", numpy.sin(numpy.arange(16000) / 10) * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(path)


@pytest.mark.parametrize("fmt", ["WAV", "NIST"])
def test_robust_truncated_file_is_flagged(tmp_path, fmt):
    data = numpy.random.default_rng(0).standard_normal(16000) * 0.1
    path = str(tmp_path / f"full.{fmt.lower()}")
    soundfile.write(path, data, 16000, format=fmt, subtype="PCM_16")
    assert declared_frames(path) == 16000
    whole = open(path, "rb").read()
    cut = str(tmp_path / f"cut.{fmt.lower()}")
    open(cut, "wb").write(whole[: len(whole) // 2])
    with pytest.raises(AudioError, match=r"truncated audio file .*cut\..*16000 frames"):
        load_audio(cut)
    with pytest.warns(AudioWarning, match="truncated"):
        assert 0 < load_audio(cut, allow_truncated=True).shape[0] < 16000


def test_robust_streaming_wav_with_unknown_size_is_not_flagged(tmp_path):
    path = write(tmp_path, "stream.wav", numpy.zeros(1600) + 0.1, subtype="PCM_16")
    raw = bytearray(open(path, "rb").read())
    raw[raw.index(b"data") + 4 : raw.index(b"data") + 8] = b"\xff\xff\xff\xff"
    open(path, "wb").write(bytes(raw))
    assert declared_frames(path) is None


def test_robust_silence_detection(tmp_path):
    assert is_silent(load_audio(write(tmp_path, "zeros.wav", numpy.zeros(48000))))
    speech_like = numpy.zeros(48000)
    speech_like[20000:24000] = numpy.sin(numpy.arange(4000) / 5) * 0.02  # one quiet word in silence
    assert not is_silent(torch.from_numpy(speech_like).float())


def test_robust_an4_files_load_without_warnings(an4_dir):
    files = sorted((an4_dir / "wav" / "an4test_clstk").rglob("*.sph"))[:20]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in files:
            assert not is_silent(load_audio(str(path)))
