"""SpeechBrain's ``Fbank`` in numpy (centred STFT, power spectrum, mel
matrix, dB with a per-utterance ``top_db`` floor), with the settings an
export stores in ``features.npz``."""

import numpy


class NumpyFbank:
    """Log-mel filterbanks of one waveform, equal to SpeechBrain's ``Fbank``
    to float rounding (computed in float32, as SpeechBrain does).

    Arguments
    ---------
    window : numpy.ndarray
        Analysis window, ``n_fft`` samples.
    mel_matrix : numpy.ndarray
        ``(n_fft // 2 + 1, n_mels)``.
    hop_length : int
    amin, top_db, multiplier, db_offset : float
        As SpeechBrain's ``Filterbank`` (``10 log10(max(x, amin)) - db_offset``,
        floored at the utterance's maximum minus ``top_db``).

    Example
    -------
    >>> fbank = NumpyFbank(numpy.hanning(8), numpy.ones((5, 2)), hop_length=4)
    >>> fbank(numpy.zeros(16)).shape
    (5, 2)
    """

    def __init__(self, window, mel_matrix, hop_length, amin=1e-10, top_db=80.0, multiplier=10.0,
                 db_offset=0.0, n_fft=None):
        self.window = numpy.asarray(window, dtype=numpy.float32)
        self.mel_matrix = numpy.asarray(mel_matrix, dtype=numpy.float32)
        self.n_fft = int(n_fft or len(self.window))
        self.hop_length = int(hop_length)
        self.amin, self.top_db = float(amin), float(top_db)
        self.multiplier, self.db_offset = float(multiplier), float(db_offset)

    @classmethod
    def load(cls, path):
        """From the ``features.npz`` of a deployment folder."""
        with numpy.load(path) as data:
            return cls(**{key: data[key] for key in data.files})

    @property
    def n_mels(self):
        """Number of filterbanks."""
        return self.mel_matrix.shape[1]

    def __call__(self, wav):
        """``(frames, n_mels)`` float32 filterbanks of a mono waveform;
        ``frames = samples // hop_length + 1``."""
        wav = numpy.asarray(wav, dtype=numpy.float32)
        half = self.n_fft // 2
        padded = numpy.pad(wav, (half, half))
        frames = numpy.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[::self.hop_length]
        spectrum = numpy.fft.rfft(frames * self.window, n=self.n_fft, axis=-1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(numpy.float32)
        fbanks = power @ self.mel_matrix
        db = self.multiplier * numpy.log10(numpy.maximum(fbanks, self.amin)) - self.db_offset
        return numpy.maximum(db, db.max() - self.top_db).astype(numpy.float32)
