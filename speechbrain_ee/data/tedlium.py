"""Data preparation for TED-LIUM release 3.

Layout (``TEDLIUM_release-3`` as distributed on openslr.org/51)::

    TEDLIUM_release-3/legacy/{train,dev,test}/sph/<talk>.sph               16 kHz NIST SPHERE
    TEDLIUM_release-3/legacy/{train,dev,test}/stm/<talk>.stm
    TEDLIUM_release-3/speaker-adaptation/{train,dev,test}/{sph,stm}/...

STM lines are ``<talk> <channel> <speaker> <start> <end> <label> words...``.
The ``legacy`` partition has the TED-LIUM 2 dev and test talks, the standard
test partitions; ``speaker-adaptation`` is the other distribution.

Rows are segments of the talks (``start``/``stop`` columns, read by offset:
no clipped copies of the 452 h). ``ignore_time_segment_in_scoring`` rows are
left out; the text is normalised as lhotse (Kaldi's recipe) does
(:func:`lhotse.recipes.utils.normalize_text_tedlium`: apostrophe suffixes
joined, ``it 's`` -> ``IT'S``, noise tags dropped) and ``<unk>`` is removed
from the words (``unk="remove"``, as Kaldi's scoring) or the segment left out
(``unk="skip"``).

Why not ``lhotse.recipes.prepare_tedlium`` as it is: it reads only the
``legacy`` partition, needs the ``sph2pipe`` binary for the SPHERE headers
(``lhotse install-sph2pipe`` downloads it; libsndfile reads these PCM files
directly), and stops at the first malformed STM line or when the STM and
SPHERE counts differ. The STM format is one ``split()`` per line; a bad line
is skipped and counted with its file and line number.
"""

import logging
import os
import re

from lhotse.recipes.utils import normalize_text_tedlium

from speechbrain_ee.data.corpora import (
    MALFORMED,
    UNK,
    Skipped,
    Utterance,
    parse_times,
    prepare_splits,
    recording_duration,
    require_folders,
    segment_of,
)
from speechbrain_ee.data.manifest import DataPreparationError

logger = logging.getLogger(__name__)

PARTITIONS = ("legacy", "speaker-adaptation")
IGNORED = "ignore_time_segment_in_scoring"
_CURLY_TAG = re.compile(r"\{([^}]*)\}")


def normalize_stm_words(words, unk="remove"):
    """The words of an STM line as a transcript (None: leave the segment out).

    Example
    -------
    >>> normalize_stm_words("they 're here {NOISE} <unk> ' cause it 's late")
    "they're here 'cause it's late"
    >>> normalize_stm_words("a <unk> word", unk="skip") is None
    True
    """
    if unk not in ("remove", "skip"):
        raise ValueError(f"unk must be 'remove' or 'skip', got {unk!r}")
    if unk == "skip" and "<unk>" in words.split():
        return None
    text = normalize_text_tedlium(_CURLY_TAG.sub(r"[\1]", words), "kaldi")
    return re.sub(r"\s+", " ", text).strip()


def stm_segments(stm_path, sph_path, unk="remove"):
    """The rows of one talk's STM file, as segments of its SPHERE file.

    Yields
    ------
    Utterance or Skipped
        A segment per usable line; malformed lines, segments outside the
        audio and a missing or unreadable audio file come as
        :class:`Skipped` naming ``file:line``.
    """
    duration = recording_duration(sph_path, stm_path)
    with open(stm_path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            where = f"{stm_path}:{lineno}"
            fields = line.split()
            if not fields or line.startswith(";;"):
                continue
            if len(fields) < 5:
                yield Skipped(where, MALFORMED, "expected: talk channel speaker start end [label] words")
                continue
            talk, _, speaker, start, stop, *rest = fields
            if rest and rest[0].startswith("<") and rest[0].endswith(">") and rest[0] != "<unk>":
                rest = rest[1:]  # the <o,f0,male> label
            words = " ".join(rest)
            if words == IGNORED:
                continue
            if isinstance(duration, Skipped):
                yield Skipped(where, duration.reason, duration.detail)
                continue
            times = parse_times(where, start=start, end=stop)
            if isinstance(times, Skipped):
                yield times
                continue
            start, stop = times
            segment = segment_of(sph_path, duration, start, stop, where)
            if isinstance(segment, Skipped):
                yield segment
                continue
            start, stop = segment
            text = normalize_stm_words(words, unk)
            if text is None:
                yield Skipped(where, UNK)
                continue
            uid = f"{talk}-{round(start * 100):07d}-{round(stop * 100):07d}"
            yield Utterance(uid, sph_path, speaker, text, round(stop - start, 4), start, stop, where)


def _split_reader(split_folder, unk):
    def read():
        stm_folder, sph_folder = os.path.join(split_folder, "stm"), os.path.join(split_folder, "sph")
        for name in sorted(os.listdir(stm_folder)):
            if name.endswith(".stm"):
                talk = name[: -len(".stm")]
                yield from stm_segments(os.path.join(stm_folder, name), os.path.join(sph_folder, f"{talk}.sph"), unk)
    return read


def prepare_tedlium(
    data_folder,
    save_folder,
    partition="legacy",
    splits=("train", "dev", "test"),
    unk="remove",
    min_duration=0.1,
    max_duration=None,
    skip_prep=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``test.csv`` (segments of the talks).

    Arguments
    ---------
    data_folder : str
        The ``TEDLIUM_release-3`` folder.
    save_folder : str
        Where the manifests (and ``preparation.json``, the counts) go.
    partition : str
        ``legacy`` (the standard dev/test talks) or ``speaker-adaptation``.
    splits : sequence of str
        Split folders of the partition, one manifest each.
    unk : str
        ``remove`` the ``<unk>`` words, or ``skip`` the segments holding one.
    min_duration : float
        Shorter segments are dropped (and counted).
    max_duration : float, optional
        Longer training segments are dropped (and counted); dev and test keep all.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        ``{split: csv path}``.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    root = os.path.join(data_folder, partition)
    if not skip_prep:
        if not os.path.isdir(data_folder):
            raise DataPreparationError(
                f"TED-LIUM data folder not found: {data_folder} (expected TEDLIUM_release-3 with {partition}/)"
            )
        require_folders([os.path.join(root, s, sub) for s in splits for sub in ("stm", "sph")], "TED-LIUM 3")
    readers = {split: _split_reader(os.path.join(root, split), unk) for split in splits}
    return prepare_splits(readers, save_folder, "TED-LIUM 3", min_duration, max_duration,
                          segments=True, skip_prep=skip_prep)
