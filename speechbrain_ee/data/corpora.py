"""What the LibriSpeech, TED-LIUM 3 and VoxPopuli preparations share.

Each corpus module turns its layout into a stream of :class:`Utterance`
rows (or :class:`Skipped` notes naming the file and line of a row that
cannot be used); :func:`write_split` normalises the transcripts to the
tokenizers' alphabet, drops utterances over the length limit, writes the
manifest row by row (:class:`ManifestWriter`: memory does not grow with
the corpus) and counts every row left out, by reason. A bad row never
stops a preparation halfway; a missing split folder stops it before it
starts. :func:`prepare_splits` drives the splits of one corpus and writes
their counts to ``preparation.json`` beside the manifests.
"""

import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass

from speechbrain_ee.data.manifest import (
    DataPreparationError,
    ManifestWriter,
    audio_duration,
    Utterance,
    skip_if_prepared,
)

logger = logging.getLogger(__name__)

#: Characters every recipe's tokenizer covers (the wav2vec2 graphemes too).
ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")
_PUNCTUATION = re.compile(r"[.,;:!?\"()\[\]{}]")
_HYPHENS = re.compile(r"[-\u2010-\u2015/]")
_APOSTROPHES = re.compile(r"[\u2018\u2019`]")
_SPACES = re.compile(r"\s+")

# why rows are left out (the keys of the counts in preparation.json)
OVER_LENGTH = "longer than max_duration"
TOO_SHORT = "shorter than min_duration"
OUTSIDE_ALPHABET = "transcript empty or outside the alphabet (A-Z, apostrophe)"
DUPLICATE = "duplicate utterance ID"
BAD_AUDIO = "audio file missing or unreadable"
OUTSIDE_AUDIO = "segment outside the audio"
MALFORMED = "malformed line"
UNK = "<unk> in the transcript"


@dataclass
class Skipped:
    """A row that cannot be used: ``where`` (file:line), the ``reason`` (one
    of the categories above) and the ``detail`` logged with it."""

    where: str
    reason: str
    detail: str = None


def normalize_transcript(text):
    """Upper-case words over ``A-Z`` and the apostrophe, or None when the
    text is empty or keeps other characters (digits, other scripts, bytes
    that were not text): such an utterance is left out, not mangled.

    Accents are stripped (``café`` -> ``CAFE``), punctuation dropped,
    hyphens and slashes split words, typographic apostrophes unified.

    Example
    -------
    >>> normalize_transcript("  it’s a well-known café, isn't it? ")
    "IT'S A WELL KNOWN CAFE ISN'T IT"
    >>> normalize_transcript("in 2019"), normalize_transcript(" ... ")
    (None, None)
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _APOSTROPHES.sub("'", text)
    text = _HYPHENS.sub(" ", _PUNCTUATION.sub(" ", text))
    text = _SPACES.sub(" ", text).strip().upper()
    if not text or not set(text) <= ALPHABET or not any(c.isalpha() for c in text):
        return None
    return text


def segment_of(recording, duration, start, stop, where, tolerance=0.05):
    """Checks a segment ``start``..``stop`` (seconds) of a recording of
    ``duration`` seconds: returns ``(start, stop)``, with ``stop`` cut to
    the end when it overruns by at most ``tolerance`` (rounding of the
    transcripts' times), or a :class:`Skipped` naming ``where``.

    Example
    -------
    >>> segment_of("talk.sph", 10.0, 9.0, 10.02, "talk.stm:3")
    (9.0, 10.0)
    >>> segment_of("talk.sph", 10.0, 9.0, 12.0, "talk.stm:4").detail
    'segment 9.000-12.000s outside the audio (10.000s) of talk.sph'
    """
    if stop > duration and stop - duration <= tolerance:
        stop = duration
    if not 0 <= start < stop <= duration:
        return Skipped(where, OUTSIDE_AUDIO,
                       f"segment {start:.3f}-{stop:.3f}s outside the audio ({duration:.3f}s) of {recording}")
    return start, stop


def parse_times(where, **fields):
    """The float values of ``fields`` (e.g. ``start="1.5", stop="2"``), or a
    :class:`Skipped` naming the first that is not a number.

    Example
    -------
    >>> parse_times("a.stm:2", start="1.5", stop="2")
    [1.5, 2.0]
    >>> parse_times("a.stm:3", start="one", stop="2").detail
    "start is not a number: 'one'"
    """
    values = []
    for name, value in fields.items():
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            return Skipped(where, MALFORMED, f"{name} is not a number: {value!r}")
    return values


def recording_duration(path, where):
    """The duration of a recording, or a :class:`Skipped` (``where``) saying why it cannot be read."""
    try:
        return audio_duration(path)
    except DataPreparationError as err:
        return Skipped(where, BAD_AUDIO, str(err))


def write_split(entries, csv_path, min_duration=0.0, max_duration=None, segments=False):
    """Writes one split's manifest from a stream of rows.

    Arguments
    ---------
    entries : iterable of Utterance or Skipped
        The corpus reader's output (durations set).
    csv_path : str
        Destination manifest.
    min_duration, max_duration : float
        Utterances outside these bounds (seconds; None: no upper bound) are
        dropped and counted.
    segments : bool
        Rows are segments of long recordings (``start``/``stop`` columns).

    Returns
    -------
    dict
        ``{"utterances": n, "hours": h, "skipped": {reason: count}}``.
    """
    seconds, seen = 0.0, set()
    with ManifestWriter(csv_path, segments=segments) as writer:
        for entry in entries:
            if isinstance(entry, Skipped):
                writer.skip(entry.where, entry.reason, entry.detail)
                continue
            where = f"{entry.source or entry.wav} ({entry.ID})"
            if entry.ID in seen:
                writer.skip(where, DUPLICATE)
                continue
            seen.add(entry.ID)
            text = normalize_transcript(entry.wrd)
            if text is None:
                writer.skip(where, OUTSIDE_ALPHABET, f"{OUTSIDE_ALPHABET}: {entry.wrd!r}")
                continue
            if entry.duration < min_duration:
                writer.skip(where, TOO_SHORT, f"{entry.duration:.2f}s, {TOO_SHORT} ({min_duration}s)")
                continue
            if max_duration is not None and entry.duration > max_duration:
                writer.skip(where, OVER_LENGTH, f"{entry.duration:.2f}s, {OVER_LENGTH} ({max_duration}s)")
                continue
            entry.wrd = text
            writer.write(entry)
            seconds += entry.duration
    return {"utterances": writer.rows, "hours": round(seconds / 3600, 4), "skipped": dict(writer.skipped)}


def require_folders(folders, corpus):
    """Raises one clear error listing every missing folder (before any work)."""
    missing = [f for f in folders if not os.path.isdir(f)]
    if missing:
        raise DataPreparationError(f"{corpus}: missing folder(s) {', '.join(map(str, missing))}")


def prepare_splits(readers, save_folder, corpus, min_duration=0.0, max_duration=None,
                   segments=False, skip_prep=False):
    """Writes ``<save_folder>/<name>.csv`` for every ``name: reader`` (a
    function returning the split's rows) and the counts of all of them to
    ``<save_folder>/preparation.json``; does nothing when every manifest is
    already there.

    Returns
    -------
    dict
        ``{name: csv path}``.
    """
    paths = {name: os.path.join(save_folder, f"{name}.csv") for name in readers}
    if skip_prep:
        return paths
    if skip_if_prepared(paths.values()):
        logger.info("%s manifests already in %s, skipping preparation", corpus, save_folder)
        return paths
    report = {}
    for name, reader in readers.items():
        split_max = max_duration if name == "train" else None  # dev/test keep every utterance
        report[name] = write_split(reader(), paths[name], min_duration, split_max, segments)
        logger.info("%s %s: %s", corpus, name, report[name])
    with open(os.path.join(save_folder, "preparation.json"), "w") as handle:
        json.dump({"corpus": corpus, "max_duration": max_duration, "splits": report}, handle, indent=1)
    return paths


__all__ = ["Skipped", "Utterance", "normalize_transcript", "segment_of", "parse_times",
           "write_split", "require_folders", "prepare_splits"]
