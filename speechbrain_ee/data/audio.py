"""Audio loading with clear errors: any sample rate and channel count in, mono
float32 at the model's rate out.

Nothing is silently wrong (see ``docs/robustness.md``):

* a file that cannot be read, is empty, or has non-finite samples (NaN, inf)
  raises :class:`AudioError` naming the file;
* a file whose data is shorter than its header says (a WAV or NIST SPHERE
  file cut short on disk) raises :class:`AudioError` too (``allow_truncated``
  turns it into an :class:`AudioWarning` and keeps the samples that are there);
* float samples beyond [-1, 1] are peak-normalised to 1 with an
  :class:`AudioWarning`; clipped audio (many samples at full scale) is
  transcribed as it is, with an :class:`AudioWarning`;
* digital silence is recognised by :func:`is_silent` (the recogniser returns
  an empty transcript for it).
"""

import math
import os
import struct
import warnings

import soundfile
import torch
import torchaudio

from speechbrain_ee.data.manifest import DataPreparationError

SILENCE_DBFS = -70.0  # loudest 25 ms frame below this: silence (AN4 speech: -37 to -11; 16-bit dither: about -90)
CLIP_LEVEL = 0.999  # |sample| at or above: at full scale
CLIP_FRACTION = 0.001  # warn when more samples than this are at full scale


class AudioError(DataPreparationError):
    """An audio file that cannot be used; the message names it."""


class AudioWarning(UserWarning):
    """Audio that is used with a defined correction or caveat; the message names the file."""


def declared_frames(path):
    """Frames the header of a RIFF WAV or NIST SPHERE file announces (None
    for other formats, or when the writer left the size unknown, as a
    streaming WAV writer does with 0 or 0xFFFFFFFF).

    libsndfile silently shortens a WAV cut short on disk to the frames that
    are there; this reads what the header promised.

    Example
    -------
    >>> import numpy, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.wav")
    >>> soundfile.write(path, numpy.zeros(1600), 16000, subtype="PCM_16")
    >>> declared_frames(path)
    1600
    """
    with open(path, "rb") as handle:
        head = handle.read(1024)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _riff_data_frames(handle)
        if head[:7] == b"NIST_1A":
            fields = dict(
                (line.split()[0], line.split()[-1])
                for line in head.decode("ascii", "replace").splitlines() if len(line.split()) >= 3
            )
            try:
                return int(fields["sample_count"])
            except (KeyError, ValueError):
                return None
    return None


def _riff_data_frames(handle):
    """Frames of the ``data`` chunk of an open RIFF/WAVE file (None if unknown)."""
    handle.seek(12)
    block_align = None
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return None
        chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk_id == b"fmt ":
            fmt = handle.read(size)
            block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
            handle.seek(size % 2, os.SEEK_CUR)
            continue
        if chunk_id == b"data":
            if size in (0, 0xFFFFFFFF) or not block_align:
                return None
            return size // block_align
        handle.seek(size + size % 2, os.SEEK_CUR)


def peak_dbfs_frames(wav, frame=400):
    """Level (dBFS) of the loudest ``frame``-sample frame (RMS) of a 1-D
    waveform; ``-inf`` for digital silence.

    Example
    -------
    >>> peak_dbfs_frames(torch.zeros(16000))
    -inf
    >>> round(peak_dbfs_frames(torch.full((16000,), 0.1)), 1)
    -20.0
    """
    wav = wav.detach().float().flatten()
    if wav.numel() == 0:
        return -math.inf
    frame = min(frame, wav.numel())
    frames = wav[: wav.numel() - wav.numel() % frame].view(-1, frame)
    rms = frames.pow(2).mean(dim=1).sqrt().max().item()
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def is_silent(wav, threshold_dbfs=SILENCE_DBFS):
    """Whether a 1-D waveform (full scale 1.0) is silence: its loudest 25 ms
    frame is below ``threshold_dbfs``. The recogniser gives such input an
    empty transcript instead of inventing words.

    Example
    -------
    >>> is_silent(torch.zeros(48000)), is_silent(1e-5 * torch.randn(48000))
    (True, True)
    >>> is_silent(0.05 * torch.randn(48000))
    False
    """
    return peak_dbfs_frames(wav) < threshold_dbfs


def check_finite(wav, name):
    """Raises :class:`AudioError` naming ``name`` when ``wav`` has NaN or
    infinite samples (a model would turn them into a meaningless transcript).

    Example
    -------
    >>> check_finite(torch.tensor([0.0, float("nan")]), "x.wav")
    Traceback (most recent call last):
    ...
    speechbrain_ee.data.audio.AudioError: x.wav has 1 non-finite samples (NaN or inf) of 2: broken audio
    """
    bad = int((~torch.isfinite(wav)).sum())
    if bad:
        raise AudioError(f"{name} has {bad} non-finite samples (NaN or inf) of {wav.numel()}: broken audio")


def fix_level(wav, name):
    """``wav`` with samples beyond [-1, 1] peak-normalised to 1 (a float file
    in another scale, e.g. int16 values stored as float), with an
    :class:`AudioWarning`; warns (and keeps the samples) when more than
    ``CLIP_FRACTION`` of them are at full scale (clipped recording).

    Example
    -------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fix_level(torch.tensor([0.0, 3000.0, -6000.0]), "x.wav").tolist()
    [0.0, 0.5, -1.0]
    >>> str(caught[0].message)
    'x.wav: samples up to 6000 outside [-1, 1] (float audio in another scale?): peak-normalised to 1'
    """
    peak = wav.abs().max().item() if wav.numel() else 0.0
    if peak > 1.0:
        warnings.warn(
            f"{name}: samples up to {peak:g} outside [-1, 1] (float audio in another scale?): peak-normalised to 1",
            AudioWarning, stacklevel=3,
        )
        return wav / peak
    clipped = int((wav.abs() >= CLIP_LEVEL).sum()) if wav.numel() else 0
    if clipped > CLIP_FRACTION * wav.numel():
        warnings.warn(
            f"{name}: {clipped} of {wav.numel()} samples at full scale: the recording is clipped, "
            "the transcript may suffer", AudioWarning, stacklevel=3,
        )
    return wav


def load_audio(path, sample_rate=16000, min_samples=1, allow_truncated=False):
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
    allow_truncated : bool
        A file with fewer frames than its header announces is an
        :class:`AudioError` unless this is True (then an :class:`AudioWarning`
        and the frames that are there).

    Returns
    -------
    torch.Tensor
        Shape ``(samples,)``, finite, within [-1, 1] (see :func:`fix_level`).

    Raises
    ------
    AudioError
        Unreadable, empty, too short, truncated or non-finite audio.

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
        promised = declared_frames(path)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioError(f"cannot read audio file {path}: {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"empty audio file (0 samples): {path}")
    if promised is not None and data.shape[0] < promised:
        message = (f"truncated audio file {path}: its header announces {promised} frames, "
                   f"only {data.shape[0]} are there")
        if not allow_truncated:
            raise AudioError(message)
        warnings.warn(message + " (using those)", AudioWarning, stacklevel=2)
    return model_waveform(data, rate, sample_rate, min_samples, f"audio file {path}")


def model_waveform(data, rate, sample_rate, min_samples, what):
    """Mono float waveform at ``sample_rate`` from ``(frames, channels)``
    samples read at ``rate``: non-finite samples rejected, the level fixed
    (:func:`fix_level`), at least ``min_samples`` long; ``what`` names the
    audio in errors."""
    wav = torch.from_numpy(data).mean(dim=1)
    check_finite(wav, what)
    wav = fix_level(wav, what)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(
            f"{what} is too short: {wav.shape[0]} samples at {sample_rate} Hz, "
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
    return model_waveform(data, rate, sample_rate, min_samples,
                          f"segment {float(start):.3f}-{float(stop):.3f}s of {path}")


def silent_rows(wavs, wav_lens=None, threshold_dbfs=SILENCE_DBFS):
    """:func:`is_silent` of each row of a padded batch ``(batch, samples)``
    (``wav_lens``: relative lengths, default all 1).

    Example
    -------
    >>> silent_rows(torch.stack([torch.zeros(8000), 0.1 * torch.randn(8000)]))
    [True, False]
    """
    if wav_lens is None:
        wav_lens = torch.ones(wavs.shape[0])
    return [
        is_silent(wav[: max(1, int(round(float(rel) * wavs.shape[1])))], threshold_dbfs)
        for wav, rel in zip(wavs, wav_lens)
    ]
