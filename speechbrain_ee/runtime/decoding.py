"""CTC decoding of exit posteriors in numpy: greedy and prefix beam search,
and the edit distance the agreement selector and the WER use."""

import math

import numpy


def ctc_greedy(log_probs, blank_index):
    """Best path: arg-max per frame, repeats merged, blanks removed.

    Example
    -------
    >>> ctc_greedy(numpy.log([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.7, 0.3]]), blank_index=1)
    [0, 0]
    """
    best = numpy.asarray(log_probs).argmax(axis=-1)
    tokens, previous = [], None
    for token in best.tolist():
        if token != previous and token != blank_index:
            tokens.append(token)
        previous = token
    return tokens


def _logadd(a, b):
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def ctc_prefix_beam(log_probs, blank_index, beam_size=10, prune_logp=-10.0):
    """CTC prefix beam search (no LM): the token ids of the best prefix.

    Tokens below ``prune_logp`` (log-probability) in a frame, and beyond the
    ``beam_size`` best of the frame, are not expanded.

    Example
    -------
    >>> lp = numpy.log([[0.6, 0.4], [0.6, 0.4]])  # "0" by several paths beats "" (0.16)
    >>> ctc_prefix_beam(lp, blank_index=1, beam_size=4)
    [0]
    """
    # prefix -> (log P ending in blank, log P ending in non-blank)
    beams = {(): (0.0, -math.inf)}
    for frame in numpy.asarray(log_probs, dtype=numpy.float64):
        order = numpy.argsort(frame)[::-1][:beam_size]
        candidates = [int(t) for t in order if frame[t] >= prune_logp] or [int(order[0])]
        following = {}
        for prefix, (p_blank, p_token) in beams.items():
            total = _logadd(p_blank, p_token)
            for token in candidates:
                p = float(frame[token])
                if token == blank_index:
                    b, n = following.get(prefix, (-math.inf, -math.inf))
                    following[prefix] = (_logadd(b, total + p), n)
                    continue
                extended = prefix + (token,)
                b, n = following.get(extended, (-math.inf, -math.inf))
                if prefix and prefix[-1] == token:  # a repeat needs a blank in between
                    following[extended] = (b, _logadd(n, p_blank + p))
                    b0, n0 = following.get(prefix, (-math.inf, -math.inf))
                    following[prefix] = (b0, _logadd(n0, p_token + p))
                else:
                    following[extended] = (b, _logadd(n, total + p))
        beams = dict(sorted(following.items(), key=lambda item: -_logadd(*item[1]))[:beam_size])
    best = max(beams.items(), key=lambda item: _logadd(*item[1]))
    return list(best[0])


def edit_distance(reference, hypothesis):
    """Insertions + deletions + substitutions from ``reference`` to
    ``hypothesis`` (sequences: strings compare characters, lists words).

    Example
    -------
    >>> edit_distance("abc", "abd"), edit_distance("A B".split(), "A B C".split())
    (1, 1)
    """
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]
