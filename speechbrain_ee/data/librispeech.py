"""Data preparation for LibriSpeech (960 h) and Mini LibriSpeech.

Layout (as distributed on openslr.org/12)::

    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac
    LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "UTTID TEXT" lines

Writes ``train.csv`` (all training splits, utterances over ``max_duration``
dropped), ``dev.csv`` and one manifest per test split (``test-clean.csv``,
``test-other.csv``).

Why not ``lhotse.recipes.prepare_librispeech`` as it is: it keeps every
recording and supervision of a split in memory (960 h: 281k of each) and
stops at the first transcript line without text or unreadable file. The
walk below streams the same rows (same IDs, speakers, texts and durations:
the test suite checks it against lhotse on the real subsets), reads each
duration from the FLAC header with libsndfile (a third of lhotse's time
per file) and skips and counts a bad row, naming the file and line.
"""

import logging
import os

from speechbrain_ee.data.corpora import (
    MALFORMED,
    Skipped,
    Utterance,
    prepare_splits,
    recording_duration,
    require_folders,
)
from speechbrain_ee.data.manifest import DataPreparationError

logger = logging.getLogger(__name__)

TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")


def librispeech_utterances(split_folder):
    """The rows of one split folder, in sorted (reproducible) order.

    Yields
    ------
    Utterance or Skipped
        A row per transcript line; lines without text or whose audio is
        missing or unreadable come as :class:`Skipped` (``file:line``).
    """
    for root, dirs, files in os.walk(split_folder, followlinks=True):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            trans = os.path.join(root, name)
            with open(trans, encoding="utf-8", errors="replace") as handle:
                for lineno, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    parts = line.split(maxsplit=1)
                    where = f"{trans}:{lineno}"
                    if len(parts) < 2:
                        yield Skipped(where, MALFORMED, "no transcript after the utterance ID")
                        continue
                    uttid, text = parts
                    audio = os.path.join(root, f"{uttid}.flac")
                    duration = recording_duration(audio, where)
                    if isinstance(duration, Skipped):
                        yield duration
                        continue
                    yield Utterance(uttid, audio, uttid.split("-")[0], text.strip(), duration, source=where)


def _split_reader(data_folder, splits):
    def read():
        for split in splits:
            yield from librispeech_utterances(os.path.join(data_folder, split))
    return read


def prepare_librispeech(
    data_folder,
    save_folder,
    train_splits=TRAIN_960,
    dev_splits=("dev-clean",),
    test_splits=("test-clean", "test-other"),
    min_duration=0.1,
    max_duration=None,
    skip_prep=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``<test split>.csv`` manifests.

    Arguments
    ---------
    data_folder : str
        The ``LibriSpeech`` folder holding the split folders.
    save_folder : str
        Where the manifests (and ``preparation.json``, the counts) go.
    train_splits, dev_splits : sequence of str
        Split folders concatenated into ``train.csv`` / ``dev.csv``.
    test_splits : sequence of str
        One manifest each.
    min_duration : float
        Shorter utterances are dropped (and counted).
    max_duration : float, optional
        Longer training utterances are dropped (and counted); dev and test
        keep all.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        ``{"train": path, "dev": path, <test split>: path, ...}``.
    """
    splits = [*train_splits, *dev_splits, *test_splits]
    if not skip_prep:
        if not os.path.isdir(data_folder):
            raise DataPreparationError(
                f"LibriSpeech data folder not found: {data_folder} (expected the folder holding "
                f"{', '.join(splits)})"
            )
        require_folders([os.path.join(data_folder, s) for s in splits], "LibriSpeech")
    readers = {"train": _split_reader(data_folder, train_splits), "dev": _split_reader(data_folder, dev_splits)}
    readers.update({split: _split_reader(data_folder, [split]) for split in test_splits})
    return prepare_splits(readers, save_folder, "LibriSpeech", min_duration, max_duration,
                          skip_prep=skip_prep)
