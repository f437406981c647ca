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


def load_audio_segment(path, start, stop, sample_rate=16000, min_samples=1):
    """Reads the stretch ``start``..``stop`` (seconds) of ``path`` as
    :func:`load_audio` does a whole file: only those frames are read
    (segments of long TED-LIUM talks or VoxPopuli sessions).

    Example
    -------
    >>> import tempfile, numpy, os
    >>> path = os.path.join(tempfile.mkdtemp(), "talk.wav")
    >>> soundfile.write(path, numpy.arange(48000) / 48000, 16000)
    >>> segment = load_audio_segment(path, 1.0, 1.5)
    >>> segment.shape, round(float(segment[0]) * 3, 3)
    (torch.Size([8000]), 1.0)
    """
    try:
        with soundfile.SoundFile(path) as handle:
            rate, frames = handle.samplerate, handle.frames
            first, last = round(float(start) * rate), round(float(stop) * rate)
            if not 0 <= first < last <= frames:
                raise AudioError(
                    f"segment {float(start):.3f}-{float(stop):.3f}s lies outside the audio "
                    f"({frames / rate:.3f}s) of {path}"
                )
            handle.seek(first)
            data = handle.read(last - first, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioError(f"cannot read audio file {path}: {err}") from err
    wav = torch.from_numpy(data).mean(dim=1)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(
            f"segment {float(start):.3f}-{float(stop):.3f}s of {path} is too short: "
            f"{wav.shape[0]} samples at {sample_rate} Hz, the model needs at least {min_samples}"
        )
    return wav
