"""Long recordings in bounded memory: cut at pauses, recognise the pieces.

The encoders attend over the whole input, so their memory grows with the
square of its length (and a model trained on utterances of a few seconds was
never shown minutes of context). :func:`find_cuts` splits a long waveform into
utterance-like segments at its pauses (energy, no model pass), and cuts a
segment still longer than ``max_seconds`` at its quietest point. Each
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
from speechbrain_ee.inference.transcription import Transcription

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SECONDS = 30.0  # inputs longer than this are cut (hparams ``chunk_seconds``; None or 0: never)
DEFAULT_SEARCH_SECONDS = 8.0  # segment too long: where in each window to look for the quietest point
# pauses at least MIN_PAUSE_SECONDS long, of frames within PAUSE_DEPTH of the
# floor-to-speech level range above the floor, separate segments. Chosen (lowest
# sum of WERs, default selector and last exit) on concatenations of the AN4 dev
# speakers and of every 6th training utterance, not on the test set:
# benchmarks/long_audio.py --pause-grid, results/long_audio_pause_{dev,train6}.json
MIN_PAUSE_SECONDS = 0.35
PAUSE_DEPTH = 0.5
MIN_PAUSE_DROP_DB = 10.0  # and at least this far below the speech level (a stretch without pause)


def quietest_point(wav, rate, pause_seconds=0.3):
    """Sample index of the middle of the quietest ``pause_seconds`` stretch
    of ``wav`` (mean energy of 10 ms frames, smoothed over the stretch).

    Example
    -------
    >>> wav = torch.ones(16000)
    >>> wav[9000:14000] = 0.0
    >>> 10500 <= quietest_point(wav, 16000) <= 12500
    True
    """
    hop = max(1, rate // 100)
    frames = wav[: wav.shape[0] - wav.shape[0] % hop].reshape(-1, hop).pow(2).mean(dim=1)
    width = max(1, min(frames.shape[0], int(pause_seconds * 100)))
    smoothed = torch.nn.functional.avg_pool1d(frames[None, None], width, stride=1)[0, 0]
    return int((int(smoothed.argmin()) + width / 2) * hop)


def frame_levels(wav, rate):
    """Level (dB) of each 10 ms frame of ``wav``, smoothed over 50 ms."""
    hop = max(1, rate // 100)
    energy = wav[: wav.shape[0] - wav.shape[0] % hop].reshape(-1, hop).pow(2).mean(dim=1)
    levels = energy.add(1e-10).log10().mul(10)
    return torch.nn.functional.avg_pool1d(levels[None, None], 5, 1, 2, count_include_pad=False)[0, 0]


def pause_cuts(wav, rate, min_pause=MIN_PAUSE_SECONDS, block_seconds=10.0, depth=PAUSE_DEPTH):
    """Sample positions of the middles of the pauses of ``wav``: runs of at
    least ``min_pause`` seconds of 10 ms frames whose level is below
    ``floor + depth * (speech - floor)`` and ``speech - MIN_PAUSE_DROP_DB``
    (dB; floor and speech: the 5th and 95th percentiles of the levels within
    ``block_seconds`` around them, so the threshold follows the recording's
    noise floor and loudness).

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> wav = 0.1 * torch.randn(16000 * 6)
    >>> wav[16000 * 2 : 16000 * 3] *= 0.001  # a 1 s pause at 2-3 s
    >>> [round(c / 16000, 1) for c in pause_cuts(wav, 16000)]
    [2.5]
    """
    levels = frame_levels(wav, rate)
    frames, block = levels.shape[0], int(block_seconds * 100)
    quiet = torch.zeros(frames, dtype=torch.bool)
    for start in range(0, frames, block):
        around = levels[max(0, start - block // 2) : start + block + block // 2]
        floor, speech = torch.quantile(around, torch.tensor([0.05, 0.95])).tolist()
        threshold = min(floor + depth * (speech - floor), speech - MIN_PAUSE_DROP_DB)
        quiet[start : start + block] = levels[start : start + block] < threshold
    hop, cuts, run_start = max(1, rate // 100), [], None
    for i, flag in enumerate(quiet.tolist() + [False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if i - run_start >= min_pause * 100 and run_start > 0 and i < frames:
                cuts.append((run_start + i) // 2 * hop)
            run_start = None
    return cuts


def find_cuts(wav, rate, max_seconds, search_seconds=DEFAULT_SEARCH_SECONDS, min_pause=MIN_PAUSE_SECONDS,
              depth=PAUSE_DEPTH):
    """Sample boundaries ``[0, c1, ..., len(wav)]`` of utterance-like
    segments of at most ``max_seconds``: cut in every pause
    (:func:`pause_cuts` with ``min_pause`` and ``depth``), and a segment still longer than ``max_seconds``
    cut again at the quietest point (:func:`quietest_point`) of the last
    ``search_seconds`` (at most half) of each window.

    Example
    -------
    >>> speech = torch.ones(16000 * 25)
    >>> speech[16000 * 7 : 16000 * 8] = 0.0  # a pause at 7-8 s
    >>> cuts = find_cuts(speech, 16000, 10, 5)
    >>> [round(c / 16000, 1) for c in cuts[:2]], cuts[-1] == len(speech)
    ([0.0, 7.5], True)
    >>> max(b - a for a, b in zip(cuts, cuts[1:])) <= 10 * 16000
    True
    """
    window = int(max_seconds * rate)
    if window < rate:
        raise ValueError(f"chunk_seconds must be at least 1 second, got {max_seconds}")
    search = min(int(search_seconds * rate), window // 2)
    cuts = [0]
    for end in pause_cuts(wav, rate, min_pause, depth=depth) + [wav.shape[0]]:
        start = cuts[-1]
        while end - start > window:
            region = wav[start + window - search : start + window]
            start += window - search + quietest_point(region, rate)
            cuts.append(start)
        if end > cuts[-1]:
            cuts.append(end)
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


    rate = asr.hparams.sample_rate
    cuts = find_cuts(wav, rate, max_seconds, search_seconds)
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
