"""Data preparation for CMU AN4 (census database), standard train/test split.

The corpus layout is the one CMU distributes::

    an4/etc/an4_train.transcription   "<s> TEXT </s> (uttid)"
    an4/etc/an4_train.fileids         "an4_clstk/<spk>/<uttid>"
    an4/etc/an4_test.transcription    "TEXT (uttid)"
    an4/etc/an4_test.fileids          "an4test_clstk/<spk>/<uttid>"
    an4/wav/<fileid>.sph              16 kHz NIST SPHERE

A dev set is held out from the training speakers (whole speakers, so that the
dev WER measures generalisation to new voices like the test set does).
"""

import logging
import os
import random
import re

from speechbrain_ee.data.manifest import (
    DataPreparationError,
    Utterance,
    skip_if_prepared,
    write_manifest,
)

logger = logging.getLogger(__name__)

_TRANSCRIPT_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<uttid>[^()]+)\)\s*$")


def parse_transcription(path):
    """Parses an AN4 ``.transcription`` file into ``{uttid: TEXT}``.

    Arguments
    ---------
    path : str
        The transcription file.

    Returns
    -------
    dict
        Upper-case words without the ``<s>``/``</s>`` markers.
    """
    if not os.path.isfile(path):
        raise DataPreparationError(f"AN4 transcription file not found: {path}")
    texts = {}
    with open(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            match = _TRANSCRIPT_LINE.match(line.strip())
            if match is None:
                raise DataPreparationError(f"{path}:{lineno}: cannot parse line {line.strip()!r}")
            words = [w for w in match["text"].split() if w not in ("<s>", "</s>", "<sil>")]
            texts[match["uttid"]] = " ".join(words).upper()
    return texts


def _read_split(data_folder, split):
    etc = os.path.join(data_folder, "etc")
    texts = parse_transcription(os.path.join(etc, f"an4_{split}.transcription"))
    fileids_path = os.path.join(etc, f"an4_{split}.fileids")
    if not os.path.isfile(fileids_path):
        raise DataPreparationError(f"AN4 fileids file not found: {fileids_path}")
    utterances = []
    with open(fileids_path) as handle:
        for line in handle:
            fileid = line.strip()
            if not fileid:
                continue
            uttid = os.path.basename(fileid)
            spk = fileid.split("/")[-2]
            if uttid not in texts:
                raise DataPreparationError(
                    f"no transcript for {uttid} (listed in {fileids_path})"
                )
            wav = os.path.join(data_folder, "wav", fileid + ".sph")
            utterances.append(Utterance(uttid, wav, spk, texts[uttid]))
    return utterances


def prepare_an4(
    data_folder,
    save_folder,
    dev_speakers=6,
    seed=1234,
    min_duration=0.1,
    on_bad_audio="raise",
    skip_prep=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``test.csv`` for AN4.

    Arguments
    ---------
    data_folder : str
        The ``an4`` folder (containing ``etc/`` and ``wav/``).
    save_folder : str
        Where the CSVs go.
    dev_speakers : int
        Number of training speakers held out as dev set.
    seed : int
        Seed of the dev speaker draw (fixed: the split is reproducible).
    min_duration : float
        Shorter audio is rejected (or skipped, see ``on_bad_audio``).
    on_bad_audio : str
        ``"raise"`` or ``"skip"``.
    skip_prep : bool
        Do nothing (CSVs prepared elsewhere).

    Returns
    -------
    dict
        ``{"train": path, "dev": path, "test": path}``.
    """
    paths = {s: os.path.join(save_folder, f"{s}.csv") for s in ("train", "dev", "test")}
    if skip_prep:
        return paths
    if not os.path.isdir(data_folder):
        raise DataPreparationError(
            f"AN4 data folder not found: {data_folder} (expected the 'an4' folder with etc/ and wav/)"
        )
    if skip_if_prepared(paths.values()):
        logger.info("AN4 manifests already in %s, skipping preparation", save_folder)
        return paths

    train = _read_split(data_folder, "train")
    test = _read_split(data_folder, "test")
    speakers = sorted({u.spk_id for u in train})
    held_out = set(random.Random(seed).sample(speakers, dev_speakers))
    logger.info("AN4 dev speakers: %s", sorted(held_out))
    splits = {
        "train": [u for u in train if u.spk_id not in held_out],
        "dev": [u for u in train if u.spk_id in held_out],
        "test": test,
    }
    for name, utterances in splits.items():
        write_manifest(utterances, paths[name], min_duration, on_bad_audio)
    return paths
