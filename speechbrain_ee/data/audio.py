"""Audio loading with clear errors: any sample rate and channel count in, mono
float32 at the model's rate out."""

import soundfile
import torch
import torchaudio

from speechbrain_ee.data.manifest import DataPreparationError


class AudioError(DataPreparationError):
    """An audio file that cannot be used; the message names it."""


def load_audio(path, sample_rate=16000, min_samples=1):
    """Reads ``path`` as a mono waveform at ``sample_rate``.

    Arguments
    ---------
    path : str
        Any file libsndfile reads (wav, flac, ogg, NIST sphere, ...).
    sample_rate : int
        Target rate; other rates are resampled.
    min_samples : int
        Fewer samples (after resampling) is an error: the model cannot
        produce a single output frame from it.

    Returns
    -------
    torch.Tensor
        Shape ``(samples,)``.

    Example
    -------
    >>> import tempfile, numpy, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> soundfile.write(path, numpy.zeros((8000, 2)), 8000)
    >>> load_audio(path).shape
    torch.Size([16000])
    """
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioError(f"cannot read audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"empty audio file (0 samples): {path}")
    wav = torch.from_numpy(data).mean(dim=1)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(
            f"audio file {path} is too short: {wav.shape[0]} samples at {sample_rate} Hz, "
            f"the model needs at least {min_samples}"
        )
    return wav
