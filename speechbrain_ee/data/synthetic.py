"""A small synthetic multi-speaker English corpus, made on the spot with eSpeak NG.

The content imitates CMU AN4: spelled letters, digit strings and a few command
words (46-word vocabulary), so that a small model learns it on a CPU in
minutes. Speakers are eSpeak voices: an English accent (``en``, ``en-US``,
``en-GB-scotland``...) combined with a voice variant (``m3``, ``f2``,
``klatt``...), with per-utterance speed, pitch and word-gap jitter, leading and
trailing silence, a random level and additive coloured noise at a random SNR.
The dev and test sets use voice variants that never occur in training, so their
error rates measure recognition of new speakers.

The corpus plan (texts, voices, jitter, noise) is a deterministic function of
the seed; the waveforms themselves can differ slightly from run to run (see
:mod:`speechbrain_ee.data.espeak`).
"""

import json
import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import soundfile
from scipy.signal import lfilter, resample_poly

from speechbrain_ee.data.espeak import get_espeak
from speechbrain_ee.data.manifest import (
    DataPreparationError,
    Utterance,
    skip_if_prepared,
    write_manifest,
)

logger = logging.getLogger(__name__)

LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
COMMANDS = ["ENTER", "ERASE", "RUBOUT", "REPEAT", "STOP", "START", "GO", "YES", "NO", "HELP"]
VOCABULARY = LETTERS + DIGITS + COMMANDS

# Alone, eSpeak reads "A" as the article and "I" unstressed; these spellings
# give the letter names.
_SPOKEN_FORMS = {"A": "eigh", "I": "eye"}

SPLITS = ("train", "dev", "test")


@dataclass
class SyntheticUtterance:
    """Everything needed to render one utterance (the corpus plan)."""

    ID: str
    wrd: str
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    word_gap: int
    lead_s: float
    trail_s: float
    peak: float
    snr_db: float
    noise_colour: float
    noise_seed: int

    @property
    def spk_id(self):
        """The voice name without spaces."""
        return self.voice.replace(" ", "_")


def random_transcript(rng):
    """An AN4-like transcript: spelled letters, digits, commands or a mix.

    Example
    -------
    >>> text = random_transcript(random.Random(0))
    >>> set(text.split()) <= set(VOCABULARY)
    True
    """
    kind = rng.choices(["letters", "digits", "command", "command_args", "mixed"], [3, 3, 1, 2, 1])[0]
    if kind == "letters":
        words = rng.choices(LETTERS, k=rng.randint(2, 6))
    elif kind == "digits":
        words = rng.choices(DIGITS, k=rng.randint(2, 7))
    elif kind == "command":
        words = [rng.choice(COMMANDS)]
    elif kind == "command_args":
        words = [rng.choice(COMMANDS)] + rng.choices(rng.choice([LETTERS, DIGITS]), k=rng.randint(1, 4))
    else:
        words = rng.choices(LETTERS + DIGITS, k=rng.randint(3, 7))
    return " ".join(words)


def spoken_text(transcript):
    """The text given to eSpeak for a transcript (letter names spelled out).

    Example
    -------
    >>> spoken_text("A B I SEVEN")
    'eigh B eye seven'
    """
    return " ".join(
        _SPOKEN_FORMS.get(w, w if len(w) == 1 else w.lower()) for w in transcript.split()
    )


def split_voices(variants, dev_voices, test_voices, seed):
    """Disjoint voice variants for train, dev and test, drawn with ``seed``."""
    if dev_voices + test_voices >= len(variants):
        raise DataPreparationError(
            f"eSpeak has {len(variants)} voice variants: cannot hold out "
            f"{dev_voices} for dev and {test_voices} for test and keep some for training"
        )
    shuffled = sorted(variants)
    random.Random(f"voices-{seed}").shuffle(shuffled)
    return {
        "test": shuffled[:test_voices],
        "dev": shuffled[test_voices:test_voices + dev_voices],
        "train": shuffled[test_voices + dev_voices:],
    }


def plan_utterance(split, index, seed, accents, variants, snr_db=(5.0, 30.0)):
    """Draws one utterance of ``split`` (a function of seed, split and index only)."""
    rng = random.Random(f"{seed}-{split}-{index}")
    return SyntheticUtterance(
        ID=f"{split}-{index:05d}",
        wrd=random_transcript(rng),
        voice=f"{rng.choice(accents)}+{rng.choice(variants)}",
        rate=rng.randint(135, 215),
        pitch=rng.randint(25, 75),
        pitch_range=rng.randint(20, 80),
        word_gap=rng.randint(0, 4),
        lead_s=round(rng.uniform(0.05, 0.4), 3),
        trail_s=round(rng.uniform(0.05, 0.4), 3),
        peak=round(rng.uniform(0.2, 0.9), 3),
        snr_db=round(rng.uniform(*snr_db), 2),
        noise_colour=round(rng.uniform(0.0, 0.95), 3),
        noise_seed=rng.getrandbits(32),
    )


def plan_corpus(sizes, seed, accents, variants, dev_voices=8, test_voices=8, snr_db=(5.0, 30.0)):
    """The whole corpus plan: ``{split: [SyntheticUtterance, ...]}``.

    Arguments
    ---------
    sizes : dict
        Number of utterances per split (``train``, ``dev``, ``test``).
    seed : int
        Everything drawn depends on it only.
    accents, variants : list of str
        eSpeak accents and voice variants to draw from.
    dev_voices, test_voices : int
        Variants held out for dev and test (never in training).
    snr_db : tuple of float
        Range of the signal-to-noise ratio.

    Example
    -------
    >>> plan = plan_corpus({"train": 3, "dev": 1, "test": 1}, 0, ["en"], ["a", "b", "c"], 1, 1)
    >>> [u.ID for u in plan["train"]]
    ['train-00000', 'train-00001', 'train-00002']
    >>> plan["train"][0].voice.split("+")[1] not in {plan["dev"][0].voice.split("+")[1], plan["test"][0].voice.split("+")[1]}
    True
    """
    voices = split_voices(variants, dev_voices, test_voices, seed)
    return {
        split: [plan_utterance(split, i, seed, accents, voices[split], snr_db) for i in range(sizes[split])]
        for split in SPLITS
    }


def render(utt, tts, sample_rate=16000):
    """Synthesises and degrades one planned utterance.

    Returns
    -------
    numpy.ndarray
        float32 waveform at ``sample_rate`` in [-1, 1].
    """
    speech = tts.synthesize(
        spoken_text(utt.wrd), utt.voice, rate=utt.rate, pitch=utt.pitch,
        pitch_range=utt.pitch_range, word_gap=utt.word_gap,
    ).astype(np.float64)
    divisor = np.gcd(sample_rate, tts.sample_rate)
    speech = resample_poly(speech, sample_rate // divisor, tts.sample_rate // divisor)
    speech *= utt.peak / max(np.abs(speech).max(), 1e-9)
    speech_power = np.mean(speech ** 2)
    wav = np.concatenate([
        np.zeros(int(utt.lead_s * sample_rate)), speech, np.zeros(int(utt.trail_s * sample_rate))
    ])
    noise = np.random.default_rng(utt.noise_seed).standard_normal(len(wav))
    noise = lfilter([1.0], [1.0, -utt.noise_colour], noise)  # 0: white, ->1: low-frequency heavy
    noise *= np.sqrt(speech_power / 10 ** (utt.snr_db / 10) / np.mean(noise ** 2))
    return np.clip(wav + noise, -1.0, 1.0).astype(np.float32)


def _settings(sizes, seed, dev_voices, test_voices, snr_db):
    return {"sizes": sizes, "seed": seed, "dev_voices": dev_voices,
            "test_voices": test_voices, "snr_db": list(snr_db), "sample_rate": 16000}


def prepare_synthetic(
    save_folder,
    num_train=2000,
    num_dev=200,
    num_test=200,
    seed=1234,
    dev_voices=8,
    test_voices=8,
    snr_db=(5.0, 30.0),
):
    """Synthesises the corpus into ``save_folder`` and writes its manifests.

    ``save_folder`` receives ``wav/<split>/<ID>.wav`` (16 kHz, 16 bit),
    ``train.csv``, ``dev.csv``, ``test.csv`` (``ID,duration,wav,spk_id,wrd``)
    and ``corpus.json`` (the settings and voices). When the CSVs exist and
    were made with the same settings, nothing is done.

    Arguments
    ---------
    save_folder : str
        Destination folder.
    num_train, num_dev, num_test : int
        Number of utterances per split.
    seed : int
        Seed of the corpus plan.
    dev_voices, test_voices : int
        Voice variants held out for dev and test.
    snr_db : tuple of float
        Range of the signal-to-noise ratio of the additive noise.

    Returns
    -------
    dict
        ``{"train": path, "dev": path, "test": path}``.
    """
    sizes = {"train": num_train, "dev": num_dev, "test": num_test}
    for split, size in sizes.items():
        if int(size) < 1:
            raise ValueError(f"num_{split} must be at least 1, got {size}")
    paths = {s: os.path.join(save_folder, f"{s}.csv") for s in SPLITS}
    settings_path = os.path.join(save_folder, "corpus.json")
    settings = _settings(sizes, seed, dev_voices, test_voices, snr_db)
    if skip_if_prepared(paths.values()) and _stored_settings(settings_path) == settings:
        logger.info("synthetic corpus already in %s, skipping synthesis", save_folder)
        return paths

    tts = get_espeak()
    accents, variants = tts.english_accents(), tts.variants()
    if not accents:
        raise DataPreparationError("the eSpeak NG voice data has no English voice")
    plan = plan_corpus(sizes, seed, accents, variants, dev_voices, test_voices, snr_db)
    logger.info(
        "synthesising %s utterances with %d English accents x %d voice variants into %s",
        sizes, len(accents), len(variants), save_folder,
    )
    for split, utterances in plan.items():
        folder = os.path.join(save_folder, "wav", split)
        os.makedirs(folder, exist_ok=True)
        rows = []
        for utt in utterances:
            path = os.path.join(folder, f"{utt.ID}.wav")
            wav = render(utt, tts)
            soundfile.write(path, wav, 16000, subtype="PCM_16")
            rows.append(Utterance(utt.ID, path, utt.spk_id, utt.wrd, len(wav) / 16000))
        write_manifest(rows, paths[split])
    voices = {s: sorted({u.spk_id for u in utts}) for s, utts in plan.items()}
    with open(settings_path, "w") as handle:
        json.dump({**settings, "accents": accents, "voices": voices}, handle, indent=1)
    return paths


def _stored_settings(path):
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        stored = json.load(handle)
    return {k: stored.get(k) for k in ("sizes", "seed", "dev_voices", "test_voices", "snr_db", "sample_rate")}

