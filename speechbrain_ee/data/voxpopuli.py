"""Data preparation for the transcribed (ASR) subset of VoxPopuli.

Two layouts are read, whichever the user has (``language`` ``en`` here):

1. What the official ``voxpopuli.get_asr_data`` writes (clipped segments)::

       <root>/transcribed_data/en/asr_{train,dev,test}.tsv
           tab-separated: id, raw_text, normalized_text, speaker_id, split, gender[, ...]
       <root>/transcribed_data/en/<year>/<id>.ogg     (year: the first 4 characters of id)

2. The session recordings with the annotation table, read by offset
   (no clipped copies)::

       <root>/raw_audios/en/**/<session>[_en|_original].ogg      lhotse's layout
       <root>/raw_audios/original/<year>/<session>_original.ogg  official download_audios --subset asr
       asr_en.tsv.gz (pipe-separated: session_id, id_, split, start_time,
           end_time, normed_text, speaker_id, ...): in <root>,
           <root>/transcribed_data/en or <root>/annotations/asr

The transcript is ``normalized_text`` (``normed_text``), upper-cased to the
tokenizers' alphabet; rows with digits or other characters outside it are
left out and counted.

Why not ``lhotse.recipes.prepare_voxpopuli``: it reads only layout 2 under
``raw_audios/en``, downloads ``asr_en.tsv.gz`` when it is not in its output
folder, keeps everything in memory and stops at the first malformed row.
Both tables are read with :mod:`csv`; a bad row is skipped and counted with
its file and line number.
"""

import csv
import glob
import gzip
import logging
import os

from speechbrain_ee.data.corpora import (
    BAD_AUDIO,
    MALFORMED,
    Skipped,
    Utterance,
    parse_times,
    prepare_splits,
    recording_duration,
    segment_of,
)
from speechbrain_ee.data.manifest import DataPreparationError

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def clip_utterances(tsv_path, audio_folder):
    """Rows of a ``get_asr_data`` table (``asr_<split>.tsv``), one clip each.

    Yields
    ------
    Utterance or Skipped
    """
    with open(tsv_path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        missing = [c for c in ("id", "normalized_text", "speaker_id") if c not in header]
        if missing:
            raise DataPreparationError(f"{tsv_path}:1: no column(s) {missing} in the header {header}")
        col = {name: header.index(name) for name in ("id", "normalized_text", "speaker_id")}
        for row in reader:
            where = f"{tsv_path}:{reader.line_num}"
            if not any(row):
                continue
            if len(row) != len(header):
                yield Skipped(where, MALFORMED, f"{len(row)} fields where the header has {len(header)}")
                continue
            uid = row[col["id"]]
            audio = os.path.join(audio_folder, uid[:4], f"{uid}.ogg")
            duration = recording_duration(audio, where)
            if isinstance(duration, Skipped):
                yield duration
                continue
            yield Utterance(uid, audio, row[col["speaker_id"]], row[col["normalized_text"]], duration,
                            source=where)


def find_annotations(data_folder, language):
    """The ``asr_<language>.tsv.gz`` table of layout 2, or None."""
    name = f"asr_{language}.tsv.gz"
    for folder in ("", os.path.join("transcribed_data", language), os.path.join("annotations", "asr")):
        path = os.path.join(data_folder, folder, name)
        if os.path.isfile(path):
            return path
    return None


def session_recordings(data_folder, language):
    """``{session_id: path}`` of the session recordings of layout 2."""
    sessions = {}
    for sub in (language, "original"):
        for path in glob.glob(os.path.join(data_folder, "raw_audios", sub, "**", "*.ogg"), recursive=True):
            stem = os.path.basename(path)[: -len(".ogg")]
            for suffix in (f"_{language}", "_original"):
                stem = stem.removesuffix(suffix)
            sessions.setdefault(stem, path)
    return sessions


def session_segments(table, sessions, split, report_unknown=True):
    """Rows of ``split`` in the annotation table, as segments of the sessions
    (and, with ``report_unknown``, the rows without a split, as skipped).

    Yields
    ------
    Utterance or Skipped
    """
    durations = {}
    with gzip.open(table, "rt", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="|", quoting=csv.QUOTE_NONE)
        for row in reader:
            where = f"{table}:{reader.line_num}"
            if row.get("split") != split and not (report_unknown and row.get("split") is None):
                continue  # another split's row (one without a split is reported once)
            if None in row or None in row.values():
                yield Skipped(where, MALFORMED, "field count differs from the header")
                continue
            session = row.get("session_id", "")
            if session not in sessions:
                yield Skipped(where, BAD_AUDIO, f"no recording of session {session!r} under raw_audios/")
                continue
            path = sessions[session]
            if path not in durations:
                durations[path] = recording_duration(path, where)
            if isinstance(durations[path], Skipped):
                yield Skipped(where, BAD_AUDIO, durations[path].detail)
                continue
            times = parse_times(where, start_time=row.get("start_time"), end_time=row.get("end_time"))
            if isinstance(times, Skipped):
                yield times
                continue
            start, stop = times
            segment = segment_of(path, durations[path], start, stop, where)
            if isinstance(segment, Skipped):
                yield segment
                continue
            start, stop = segment
            uid = f"{session}-{row.get('id_', reader.line_num)}"
            yield Utterance(uid, path, row.get("speaker_id", session), row.get("normed_text", ""),
                            round(stop - start, 4), start, stop, where)


def prepare_voxpopuli(
    data_folder,
    save_folder,
    language="en",
    splits=SPLITS,
    min_duration=0.1,
    max_duration=None,
    skip_prep=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``test.csv`` for VoxPopuli ASR.

    Arguments
    ---------
    data_folder : str
        The VoxPopuli root (holding ``transcribed_data/`` or ``raw_audios/``),
        or its ``transcribed_data/<language>`` folder.
    save_folder : str
        Where the manifests (and ``preparation.json``, the counts) go.
    language : str
        ``en`` for the paper's VoxPopuli-en.
    splits : sequence of str
        Splits to write, one manifest each.
    min_duration : float
        Shorter utterances are dropped (and counted).
    max_duration : float, optional
        Longer training utterances are dropped (and counted); dev and test keep all.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        ``{split: csv path}``.
    """
    clips = os.path.join(data_folder, "transcribed_data", language)
    if os.path.isfile(os.path.join(data_folder, f"asr_{splits[0]}.tsv")):
        clips = data_folder  # given the transcribed_data/<language> folder itself
    segments = False
    if skip_prep:
        readers = {split: None for split in splits}
    elif os.path.isfile(os.path.join(clips, f"asr_{splits[0]}.tsv")):
        missing = [s for s in splits if not os.path.isfile(os.path.join(clips, f"asr_{s}.tsv"))]
        if missing:
            raise DataPreparationError(f"VoxPopuli: no asr_{missing[0]}.tsv in {clips}")
        readers = {s: (lambda s=s: clip_utterances(os.path.join(clips, f"asr_{s}.tsv"), clips)) for s in splits}
    else:
        table = find_annotations(data_folder, language)
        sessions = session_recordings(data_folder, language) if table else {}
        if not table or not sessions:
            raise DataPreparationError(
                f"VoxPopuli ({language}) not found in {data_folder}: expected transcribed_data/{language}/"
                f"asr_{{train,dev,test}}.tsv with the clips (voxpopuli.get_asr_data), or raw_audios/ "
                f"with asr_{language}.tsv.gz"
            )
        segments = True
        readers = {s: (lambda s=s: session_segments(table, sessions, s, s == splits[0])) for s in splits}
    return prepare_splits(readers, save_folder, f"VoxPopuli-{language}", min_duration, max_duration,
                          segments=segments, skip_prep=skip_prep)
