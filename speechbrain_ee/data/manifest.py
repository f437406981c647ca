"""SpeechBrain CSV manifests: writing them safely and checking what they point to.

Every preparation script of the package (AN4, LibriSpeech layout, the synthetic
demo corpus) goes through :func:`write_manifest`, so that all manifests have the
same columns (``ID,duration,wav,spk_id,wrd``), bad audio is reported with its
file name, and an interrupted preparation never leaves a half-written CSV.

Segments of long recordings (TED-LIUM talks, VoxPopuli sessions) add two
columns, ``start`` and ``stop`` (seconds into ``wav``): the data pipeline
then reads only that stretch of the file. Manifests without them are whole
files, as before.
"""

import collections
import csv
import logging
import os
import tempfile
from dataclasses import dataclass

import soundfile

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = ("ID", "duration", "wav", "spk_id", "wrd")
SEGMENT_FIELDS = ("start", "stop")


class DataPreparationError(RuntimeError):
    """Raised when a corpus or a manifest cannot be used; the message names the file."""


@dataclass
class Utterance:
    """One row of a manifest (``start``/``stop``: a segment of ``wav``, in
    seconds; ``source``: where the row comes from, ``file:line``, for messages)."""

    ID: str
    wav: str
    spk_id: str
    wrd: str
    duration: float = None
    start: float = None
    stop: float = None
    source: str = None


def audio_duration(path):
    """Returns the duration in seconds of an audio file, with a clear error.

    Arguments
    ---------
    path : str
        Audio file readable by libsndfile (wav, flac, NIST sphere, ...).

    Returns
    -------
    float
        Duration in seconds.

    Raises
    ------
    DataPreparationError
        If the file is missing, unreadable or empty.
    """
    if not os.path.isfile(path):
        raise DataPreparationError(f"audio file not found: {path}")
    try:
        info = soundfile.info(path)
    except Exception as err:  # libsndfile raises several types
        raise DataPreparationError(f"unreadable audio file {path}: {err}") from err
    if info.frames == 0:
        raise DataPreparationError(f"empty audio file (0 samples): {path}")
    return info.frames / info.samplerate


class ManifestWriter:
    """Streams manifest rows to a CSV, atomically, counting the rows left out.

    Rows go to a temporary file in the destination folder, renamed over
    ``csv_path`` when the ``with`` block ends without error and at least
    one row was written; on an error (or no row at all) the temporary file
    is removed and an existing manifest survives. Memory does not grow with
    the number of rows (a 960 h manifest is written row by row).

    Arguments
    ---------
    csv_path : str
        Destination.
    segments : bool
        Write the ``start``/``stop`` columns (segments of long recordings).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.csv")
    >>> with ManifestWriter(path, segments=True) as writer:
    ...     writer.write(Utterance("talk-1", "talk.sph", "talk", "HELLO", 1.5, 10.0, 11.5))
    ...     writer.skip("talk.stm:7", "segment outside the audio")
    >>> print(open(path).read().strip())
    ID,duration,wav,spk_id,wrd,start,stop
    talk-1,1.5000,talk.sph,talk,HELLO,10.000,11.500
    >>> writer.rows, dict(writer.skipped)
    (1, {'segment outside the audio': 1})
    """

    def __init__(self, csv_path, segments=False):
        self.csv_path = csv_path
        self.segments = segments
        self.rows = 0
        self.skipped = collections.Counter()
        self._handle = self._tmp_path = self._writer = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.csv_path))
        os.makedirs(folder, exist_ok=True)
        fd, self._tmp_path = tempfile.mkstemp(dir=folder, suffix=".csv.tmp")
        self._handle = os.fdopen(fd, "w", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(MANIFEST_FIELDS + (SEGMENT_FIELDS if self.segments else ()))
        return self

    def write(self, utt):
        """Writes one :class:`Utterance` (its ``duration`` must be set)."""
        row = [utt.ID, f"{utt.duration:.4f}", utt.wav, utt.spk_id, utt.wrd]
        if self.segments:
            row += [f"{utt.start:.3f}", f"{utt.stop:.3f}"]
        self._writer.writerow(row)
        self.rows += 1

    def skip(self, where, reason, detail=None):
        """Counts a row left out under ``reason`` (a short category) and logs
        ``where`` (file[:line]) with it and the ``detail`` (e.g. the error)."""
        logger.warning("skipping %s: %s", where, detail or reason)
        self.skipped[reason] += 1

    def __exit__(self, exc_type, exc, traceback):
        self._handle.close()
        if exc_type is None and self.rows == 0:
            os.remove(self._tmp_path)
            raise DataPreparationError(f"no usable utterance left for {self.csv_path}")
        if exc_type is not None:
            os.remove(self._tmp_path)
            return False
        os.replace(self._tmp_path, self.csv_path)
        if self.skipped:
            logger.warning("%d utterances skipped while writing %s: %s",
                           sum(self.skipped.values()), self.csv_path, dict(self.skipped))
        logger.info("wrote %s (%d utterances)", self.csv_path, self.rows)
        return False


def write_manifest(utterances, csv_path, min_duration=0.0, on_bad_audio="raise"):
    """Writes a SpeechBrain CSV atomically, checking every audio file.

    Arguments
    ---------
    utterances : iterable of Utterance
        Rows to write. Missing durations are read from the audio headers.
    csv_path : str
        Destination. Written to a temporary file first and renamed at the end,
        so that an existing manifest survives any error.
    min_duration : float
        Utterances shorter than this (seconds) are a bad input.
    on_bad_audio : str
        ``"raise"`` stops with an error naming the file; ``"skip"`` logs the
        file and leaves it out (the count of skipped files is logged).

    Returns
    -------
    list of Utterance
        The rows written.

    Example
    -------
    >>> import tempfile, numpy, soundfile, os
    >>> tmp = tempfile.mkdtemp()
    >>> soundfile.write(os.path.join(tmp, "a.wav"), numpy.zeros(16000), 16000)
    >>> rows = write_manifest(
    ...     [Utterance("a", os.path.join(tmp, "a.wav"), "s1", "HELLO")],
    ...     os.path.join(tmp, "train.csv"))
    >>> rows[0].duration
    1.0
    """
    if on_bad_audio not in ("raise", "skip"):
        raise ValueError(f"on_bad_audio must be 'raise' or 'skip', got {on_bad_audio!r}")
    rows = []
    with ManifestWriter(csv_path) as writer:
        for utt in utterances:
            try:
                if not utt.wrd or not utt.wrd.strip():
                    raise DataPreparationError(f"empty transcript for utterance {utt.ID} ({utt.wav})")
                duration = audio_duration(utt.wav) if utt.duration is None else utt.duration
                if duration < min_duration:
                    raise DataPreparationError(
                        f"audio shorter than {min_duration:.3f}s ({duration:.3f}s): {utt.wav}"
                    )
            except DataPreparationError as err:
                if on_bad_audio == "raise":
                    raise
                writer.skip(utt.ID, "bad audio or transcript", str(err))
                continue
            utt.duration = duration
            writer.write(utt)
            rows.append(utt)
    return rows


def read_manifest(csv_path):
    """Reads a manifest written by :func:`write_manifest` and checks its columns.

    Arguments
    ---------
    csv_path : str
        The CSV file.

    Returns
    -------
    list of dict
        One dict per row.
    """
    if not os.path.isfile(csv_path):
        raise DataPreparationError(f"manifest not found: {csv_path}")
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [f for f in ("ID", "wav", "wrd") if f not in (reader.fieldnames or [])]
        if missing:
            raise DataPreparationError(f"manifest {csv_path} lacks the column(s) {missing}")
        rows = list(reader)
    if not rows:
        raise DataPreparationError(f"manifest {csv_path} has no rows")
    return rows


def normalize_transcript(text, case="upper"):
    """The convention of the package's transcripts: words separated by one
    space, no leading/trailing space, and ``case`` (``"upper"``, as the AN4,
    LibriSpeech and synthetic character models are trained; ``"lower"``;
    None: keep). Training targets and references in evaluation go through it
    (:func:`speechbrain_ee.data.pipelines.text_pipeline`), so that a manifest
    written by hand in lower case is not scored as all errors.

    Example
    -------
    >>> normalize_transcript("  go  to\tfive ")
    'GO TO FIVE'
    >>> normalize_transcript("Hello World", case=None)
    'Hello World'
    """
    if case not in ("upper", "lower", None):
        raise ValueError(f"case must be 'upper', 'lower' or None, got {case!r}")
    text = " ".join(str(text).split())
    if case == "upper":
        return text.upper()
    return text.lower() if case == "lower" else text


def check_transcripts(rows, csv_path):
    """Raises :class:`DataPreparationError` naming the manifest, the row and
    the utterance ID for every empty ``wrd`` (an empty reference makes every
    hypothesis word an error, and an all-empty set divides by zero).

    Example
    -------
    >>> check_transcripts([{"ID": "a", "wrd": "YES"}, {"ID": "b", "wrd": " "}], "test.csv")
    Traceback (most recent call last):
    ...
    speechbrain_ee.data.manifest.DataPreparationError: test.csv: empty transcript (wrd) in 1 row(s): row 3 (ID b)
    """
    empty = [f"row {i + 2} (ID {row.get('ID')})" for i, row in enumerate(rows) if not (row.get("wrd") or "").strip()]
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise DataPreparationError(f"{csv_path}: empty transcript (wrd) in {len(empty)} row(s): {shown}")


def skip_if_prepared(csv_paths):
    """Returns True when all the given manifests already exist."""
    return all(os.path.isfile(p) for p in csv_paths)
