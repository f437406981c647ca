"""What a recogniser returns for one utterance."""

from dataclasses import dataclass
from typing import Optional


@dataclass
class Transcription:
    """What :class:`EarlyExitASR` returns for one utterance.

    Attributes
    ----------
    text : str or None
        The transcript (None when the file could not be used).
    exit_index : int or None
        Exit (0-based) the utterance left at.
    layers : int or None
        Encoder layers computed (the layer of that exit).
    path : str, optional
        The audio file, for file inputs.
    error : str, optional
        Why the file could not be transcribed.
    segments : list, optional
        Long input recognised in pieces: ``(start_s, end_s, Transcription)``
        of each (:mod:`speechbrain_ee.inference.chunked`); ``layers`` is then
        their duration-weighted mean.
    """

    text: Optional[str]
    exit_index: Optional[int]
    layers: Optional[int]
    path: Optional[str] = None
    error: Optional[str] = None
    segments: Optional[list] = None
