"""The runtime's numpy filterbank equals SpeechBrain's Fbank of the shipped model."""

import glob

import numpy
import pytest
import soundfile
import torch
from speechbrain.lobes.features import Fbank

from speechbrain_ee.export.onnx import feature_settings
from speechbrain_ee.runtime.features import NumpyFbank

# both compute in float32 but with different FFTs: dB values of
# -100..+100 agree to a few 1e-4 dB
ATOL_DB = 2e-3


def both(wav, features):
    with torch.no_grad():
        expected = features(torch.from_numpy(wav)[None])[0].numpy()
    return NumpyFbank(**feature_settings(features))(wav), expected


def test_runtime_fbank_equals_speechbrain_on_noise_any_length():
    features = Fbank(sample_rate=16000, n_fft=400, n_mels=80)
    rng = numpy.random.default_rng(0)
    for samples in (400, 16000, 16161):
        got, expected = both((rng.standard_normal(samples) * 0.1).astype(numpy.float32), features)
        assert got.shape == expected.shape == (samples // 160 + 1, 80)
        numpy.testing.assert_allclose(got, expected, atol=ATOL_DB, rtol=0)


def test_runtime_fbank_equals_speechbrain_on_an4_speech(an4_dir):
    features = Fbank(sample_rate=16000, n_fft=400, n_mels=80)  # the shipped model's
    for path in sorted(glob.glob(str(an4_dir / "wav" / "an4test_clstk" / "*" / "*.sph")))[::40]:
        wav, _ = soundfile.read(path, dtype="float32")
        got, expected = both(wav, features)
        numpy.testing.assert_allclose(got, expected, atol=ATOL_DB, rtol=0)


def test_feature_settings_refuse_what_numpy_does_not_compute():
    with pytest.raises(ValueError, match="deltas"):
        feature_settings(Fbank(deltas=True))
