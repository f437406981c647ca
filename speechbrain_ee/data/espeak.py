"""Minimal ctypes binding of the eSpeak NG speech synthesiser.

The library and its voice data come from the PyPI package ``espeakng-loader``
(nothing is downloaded at run time). Only what the synthetic corpus needs is
bound: listing voices and variants, and synthesising text to 22.05 kHz int16
samples with a given voice, speed and pitch.

eSpeak is not bit-exact from run to run: its waveform generator keeps state
(pitch flutter phase, noise sources) from one utterance to the next, so the
same request can come back a few samples longer or shorter, with a different
glottal phase. What is said, by which voice, at which speed and pitch, does
not change (the loudness envelopes of two renderings correlate above 0.97).
"""

import ctypes
import os

import numpy as np

from speechbrain_ee.data.manifest import DataPreparationError

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETERS = {"rate": 1, "pitch": 3, "pitch_range": 4, "word_gap": 7}

# English voices that are not a spoken accent (Shavian alphabet spelling).
NON_ACCENT_LANGUAGES = ("en-shaw",)


class EspeakError(DataPreparationError):
    """The eSpeak NG library cannot be loaded or cannot synthesise a request."""


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def default_paths():
    """Library and data paths of the installed ``espeakng-loader`` package."""
    try:
        import espeakng_loader
    except ImportError as err:
        raise EspeakError(
            "the eSpeak NG library is needed for the synthetic corpus: "
            "install the PyPI package 'espeakng-loader' (pip install espeakng-loader)"
        ) from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


class Espeak:
    """One initialised eSpeak NG library (use :func:`get_espeak`: the library
    holds global state, so a process should initialise it once).

    Arguments
    ---------
    library_path : str, optional
        ``libespeak-ng`` shared library; default: the one of ``espeakng-loader``.
    data_path : str, optional
        ``espeak-ng-data`` folder; default: the one of ``espeakng-loader``.

    Example
    -------
    >>> tts = get_espeak()
    >>> tts.sample_rate
    22050
    >>> "en-US" in tts.english_accents() and "m3" in tts.variants()
    True
    >>> samples = tts.synthesize("A B C", "en-US+m3")
    >>> 0.3 < len(samples) / tts.sample_rate < 3.0
    True
    """

    def __init__(self, library_path=None, data_path=None):
        if library_path is None or data_path is None:
            default_lib, default_data = default_paths()
            library_path = library_path or default_lib
            data_path = data_path or default_data
        if not os.path.isdir(data_path):
            raise EspeakError(f"eSpeak NG voice data folder not found: {data_path}")
        try:
            self._lib = ctypes.CDLL(library_path)
        except OSError as err:
            raise EspeakError(
                f"cannot load the eSpeak NG library {library_path}: {err} "
                "(reinstall the PyPI package 'espeakng-loader')"
            ) from err
        self._declare()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise EspeakError(f"eSpeak NG failed to initialise with the voice data in {data_path}")
        self.sample_rate = rate
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # referenced: must outlive the library use
        self._lib.espeak_SetSynthCallback(self._callback)

    def _declare(self):
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]

    def _collect(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def _list(self, spec=None):
        voices = self._lib.espeak_ListVoices(spec)
        found, i = [], 0
        while voices[i]:
            voice = voices[i].contents
            language = ctypes.string_at(voice.languages + 1).decode() if voice.languages else ""
            found.append((voice.identifier.decode(), language))
            i += 1
        return found

    def english_accents(self):
        """Names of the English voices (``en``, ``en-US``, ``en-GB-scotland``...),
        usable as the first part of a voice name."""
        return sorted(
            identifier.split("/")[-1]
            for identifier, language in self._list()
            if (language == "en" or language.startswith("en-")) and language not in NON_ACCENT_LANGUAGES
        )

    def variants(self):
        """Names of the voice variants (``m1``, ``f2``, ``klatt``...), usable
        after a ``+`` in a voice name."""
        language = ctypes.create_string_buffer(b"variant")  # kept alive during the call
        spec = _Voice(languages=ctypes.addressof(language))
        return sorted(identifier.split("/")[-1] for identifier, _ in self._list(ctypes.byref(spec)))

    def synthesize(self, text, voice, rate=175, pitch=50, pitch_range=50, word_gap=0):
        """Speaks ``text`` and returns the int16 samples at :attr:`sample_rate`.

        Arguments
        ---------
        text : str
            Plain text.
        voice : str
            ``accent`` or ``accent+variant``, e.g. ``"en-US+f2"``.
        rate : int
            Words per minute (80 to 450).
        pitch, pitch_range : int
            Base pitch and pitch range, 0 to 100 (50 is the voice's own).
        word_gap : int
            Extra pause between words, in units of 10 ms.

        Returns
        -------
        numpy.ndarray
            int16 samples.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"eSpeak NG has no voice named {voice!r}")
        settings = {"rate": rate, "pitch": pitch, "pitch_range": pitch_range, "word_gap": word_gap}
        for name, value in settings.items():
            self._lib.espeak_SetParameter(_PARAMETERS[name], int(value), 0)
        data = text.encode() + b"\0"
        self._chunks = []
        status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise EspeakError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r} (status {status})")
        return np.concatenate(self._chunks)


_INSTANCES = {}


def get_espeak(library_path=None, data_path=None):
    """The process-wide :class:`Espeak` for these paths (created on first use)."""
    key = (library_path, data_path)
    if key not in _INSTANCES:
        _INSTANCES[key] = Espeak(library_path, data_path)
    return _INSTANCES[key]
