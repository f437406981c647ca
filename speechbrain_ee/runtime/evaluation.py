"""Word error rate of every exit (torch-free, for the runtime and the benchmarks)."""

from speechbrain_ee.runtime.decoding import edit_distance


def word_error_rate(hypotheses, references):
    """Corpus WER in percent: word edits over reference words.

    Example
    -------
    >>> round(word_error_rate(["A B", "C"], ["A B", "C D"]), 2)
    25.0
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    errors = sum(edit_distance(r.split(), h.split()) for h, r in zip(hypotheses, references))
    words = sum(len(r.split()) for r in references)
    return 100.0 * errors / max(1, words)


def exit_word_error_rates(hypotheses_per_utterance, references):
    """WER of each exit from ``[[text of exit 0, exit 1, ...] per utterance]``.

    Example
    -------
    >>> [round(w, 2) for w in exit_word_error_rates([["A", "A B"], ["C", "C"]], ["A B", "C"])]
    [33.33, 0.0]
    """
    exits = zip(*hypotheses_per_utterance)
    return [word_error_rate(list(texts), references) for texts in exits]
