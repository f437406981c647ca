"""Long recordings in bounded memory: cut at pauses, recognise the pieces.

The encoders attend over the whole input, so their memory grows with the
square of its length (and a model trained on utterances of a few seconds was
never shown minutes of context). :func:`find_cuts` splits a long waveform into
segments of at most ``max_seconds``: within the last ``search_seconds`` of
each window it cuts in the middle of the longest run of frames that the first
exit (the cheapest one) calls blank, i.e. in a pause between words. Each
segment is then recognised as an utterance of its own (batched, with the
usual exit selection per segment) and the texts are joined
(:func:`recognize_long`). Peak memory depends on ``max_seconds``, not on the
length of the file; the waveform itself and the text are all that grow.

:func:`route_batch` is the hook of
:meth:`speechbrain_ee.inference.interfaces.EarlyExitASR.recognize_batch`:
digital silence gets an empty transcript without running the model
(:func:`speechbrain_ee.data.audio.is_silent`), rows longer than the model's
``chunk_seconds`` go through :func:`recognize_long`.
"""

import logging
from collections import Counter

import torch

from speechbrain_ee.data.audio import check_finite, silent_rows

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SECONDS = 30.0  # inputs longer than this are cut (hparams ``chunk_seconds``; None or 0: never)
DEFAULT_SEARCH_SECONDS = 8.0  # where in each window to look for a pause


def longest_run_center(flags):
    """Index of the middle of the longest run of True in a 1-D bool tensor
    (None when there is none).

    Example
    -------
    >>> longest_run_center(torch.tensor([1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.bool))
    3
    >>> longest_run_center(torch.zeros(3, dtype=torch.bool)) is None
    True
    """
    best_len, best_center, run_start = 0, None, None
    for i, flag in enumerate(flags.tolist() + [False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if i - run_start > best_len:
                best_len, best_center = i - run_start, (run_start + i - 1) // 2
            run_start = None
    return best_center


def find_cuts(asr, wav, max_seconds, search_seconds=DEFAULT_SEARCH_SECONDS):
    """Sample boundaries ``[0, c1, ..., len(wav)]`` of segments of at most
    ``max_seconds``, each cut in the longest blank run of the first exit
    within the last ``search_seconds`` of its window (at the window's end
    when that part has no blank frame).

    Arguments
    ---------
    asr : EarlyExitASR
        The recogniser (its first exit finds the pauses).
    wav : torch.Tensor
        ``(samples,)`` at the model's rate.
    max_seconds, search_seconds : float
        Longest segment; the part of it searched for a pause.

    Returns
    -------
    list of int
    """
    rate = asr.hparams.sample_rate
    window = int(max_seconds * rate)
    search = min(int(search_seconds * rate), window // 2)
    if window < rate:
        raise ValueError(f"chunk_seconds must be at least 1 second, got {max_seconds}")
    cuts, start, total = [0], 0, wav.shape[0]
    while total - start > window:
        piece = wav[start : start + window]
        with torch.no_grad():
            log_probs = asr.encode_batch(piece[None], torch.ones(1), exit=0)[0]
        frames = log_probs.shape[0]
        blank = log_probs.argmax(dim=-1) == asr.hparams.blank_index
        first = int(frames * (window - search) / window)
        center = longest_run_center(blank[first:])
        cut = window if center is None else int(round((first + center + 0.5) * window / frames))
        start += max(cut, rate // 2)
        cuts.append(start)
    cuts.append(total)
    return cuts


def recognize_long(asr, wav, selector, max_seconds, batch_size=4, search_seconds=DEFAULT_SEARCH_SECONDS):
    """Recognises one long waveform segment by segment (:func:`find_cuts`).

    Arguments
    ---------
    asr : EarlyExitASR
        The recogniser.
    wav : torch.Tensor
        ``(samples,)`` at the model's rate.
    selector : ExitSelector
        Chooses the exit of each segment.
    max_seconds : float
        Longest segment.
    batch_size : int
        Segments recognised together (memory grows with it).

    Returns
    -------
    Transcription
        ``text``: the segments' texts joined by spaces; ``exit_index``: the
        exit of most of the audio; ``layers``: the layers computed, averaged
        over the segments weighted by duration; ``segments``: one
        ``(start_s, end_s, Transcription)`` per segment.
    """
    from speechbrain.utils.data_utils import batch_pad_right

    from speechbrain_ee.inference.interfaces import Transcription

    rate = asr.hparams.sample_rate
    cuts = find_cuts(asr, wav, max_seconds, search_seconds)
    bounds = list(zip(cuts[:-1], cuts[1:]))
    results = []
    for first in range(0, len(bounds), batch_size):
        group = bounds[first : first + batch_size]
        padded, lens = batch_pad_right([wav[a:b] for a, b in group])
        results += asr.recognize_batch(padded, lens, selector=selector)
    segments = [(a / rate, b / rate, r) for (a, b), r in zip(bounds, results)]
    seconds = Counter()
    depth = 0.0
    for (a, b), r in zip(bounds, results):
        seconds[r.exit_index] += b - a
        depth += (r.layers or 0) * (b - a)
    logger.info("recognised %.1f s in %d segments", wav.shape[0] / rate, len(segments))
    return Transcription(
        " ".join(r.text for r in results if r.text), seconds.most_common(1)[0][0],
        round(depth / max(1, wav.shape[0]), 3), segments=segments,
    )


def route_batch(asr, wavs, wav_lens, selector):
    """Recognition of a padded batch when some rows need special handling:
    silent rows get ``Transcription("", None, 0)`` (no layer run), rows longer
    than the model's ``chunk_seconds`` hparam (default
    :data:`DEFAULT_CHUNK_SECONDS`; None or 0: never cut) go through
    :func:`recognize_long`, the others through ``asr.recognize_batch``. None
    when no row needs it (the caller goes on as usual). Non-finite samples
    raise :class:`~speechbrain_ee.data.audio.AudioError`.
    """
    from speechbrain_ee.inference.interfaces import Transcription

    check_finite(wavs, "the input waveforms")
    rate = asr.hparams.sample_rate
    limit = getattr(asr.hparams, "chunk_seconds", DEFAULT_CHUNK_SECONDS)
    samples = [max(1, int(round(float(rel) * wavs.shape[1]))) for rel in wav_lens]
    silent = silent_rows(wavs, wav_lens)
    long = [bool(limit) and n > limit * rate for n in samples]
    if not any(silent) and not any(long):
        return None
    results = [None] * wavs.shape[0]
    ordinary = [i for i in range(wavs.shape[0]) if not silent[i] and not long[i]]
    if ordinary:
        width = max(samples[i] for i in ordinary)
        rows = wavs[ordinary, :width]
        lens = torch.tensor([samples[i] / width for i in ordinary])
        for i, result in zip(ordinary, asr.recognize_batch(rows, lens, selector=selector)):
            results[i] = result
    for i in range(wavs.shape[0]):
        if silent[i]:
            results[i] = Transcription("", None, 0)
        elif long[i]:
            results[i] = recognize_long(asr, wavs[i, : samples[i]], selector, limit)
    return results
