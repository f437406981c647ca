"""The quantities exit selectors read: posterior entropy (Wright et al. 2023,
Eq. 5), N-best confidence (Eq. 6) and the edit distance between transcripts
(Berrebbi et al. 2022). The online selectors and the offline sweep both call
these functions, so each measure exists once.
"""

import math  # noqa: F401  (used by the doctests)

import torch
from speechbrain.decoders.ctc import CTCPrefixBeamSearcher
from speechbrain.utils.edit_distance import count_ops, op_table

from speechbrain_ee.checks import check_integer
from speechbrain_ee.nnet.lengths import length_mask


def mean_frame_entropy(log_probs, lengths):
    """Entropy of the exit posteriors, Eq. 5 of Wright et al. (2023):

    ``E = -1/(T |Y|) sum_t sum_y p_t(y) log p_t(y)``

    with ``T`` the real (unpadded) frame count of each utterance and ``|Y|``
    the output vocabulary size (blank included).

    Arguments
    ---------
    log_probs : torch.Tensor
        Log-posteriors ``(batch, time, vocab)``.
    lengths : torch.Tensor
        Real frame counts (integers).

    Returns
    -------
    torch.Tensor
        One value per utterance, between 0 and ``log(|Y|)/|Y|``.

    Example
    -------
    >>> uniform = torch.full((1, 4, 8), -math.log(8))
    >>> round(float(mean_frame_entropy(uniform, torch.tensor([4]))), 4) == round(math.log(8) / 8, 4)
    True
    >>> peaked = torch.log_softmax(torch.tensor([[[30.0, 0, 0]]]), -1)
    >>> float(mean_frame_entropy(peaked, torch.tensor([1]))) < 1e-6
    True
    >>> hard = torch.tensor([[[0.0, -math.inf]]])  # p = (1, 0): no NaN
    >>> float(mean_frame_entropy(hard, torch.tensor([1])))
    0.0
    """
    # p log p from the log-posteriors (6x faster than torch.special.entr(p),
    # which takes the log again); p = 0 (log p = -inf) contributes 0, not NaN
    plogp = (log_probs.exp() * log_probs).nan_to_num_(nan=0.0)
    frame_entropy = -plogp.sum(dim=-1)
    mask = length_mask(lengths, log_probs.shape[1])
    total = (frame_entropy * mask).sum(dim=1)
    return total / (lengths.clamp(min=1).to(total.dtype) * log_probs.shape[-1])


def nbest_searcher(vocab_list, blank_index, topk, beam_size=None, **options):
    """SpeechBrain prefix beam searcher returning the ``topk`` best hypotheses
    (the N-best list of Eq. 6); ``beam_size`` defaults to ``topk`` (a wider
    beam loses less probability mass to pruning, at a cost in time).

    Example
    -------
    >>> searcher = nbest_searcher(["▁a", "▁b", "<blank>"], blank_index=2, topk=3)
    >>> searcher.topk, searcher.beam_size, searcher.prune_history
    (3, 3, False)
    """
    topk = check_topk(topk)
    beam_size = topk if beam_size is None else max(int(beam_size), topk)
    # pruning the history drops most alternatives when topk > 1 (SpeechBrain's note)
    options.setdefault("prune_history", False)
    return CTCPrefixBeamSearcher(
        blank_index=blank_index, vocab_list=vocab_list, beam_size=beam_size, topk=topk, **options
    )


def check_topk(topk):
    """``topk`` as an int, or a clear error if it is not an integer >= 1."""
    return check_integer("topk (K, the N-best list size)", topk, minimum=1)


def nbest_posterior(scores):
    """Softmax over the scores (log-probabilities) of an N-best list: the
    posterior of the best hypothesis among the ``K`` (Eq. 6).

    Example
    -------
    >>> round(nbest_posterior([math.log(0.3), math.log(0.1)]), 4)
    0.75
    >>> nbest_posterior([-3.0])
    1.0
    """
    if len(scores) == 0:
        return 0.0
    return float(torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0).max())


def nbest_confidence(log_probs, lengths, searcher):
    """N-best confidence of each utterance, Eq. 6 of Wright et al. (2023): the
    softmax over the scores of the ``K`` best hypotheses of a CTC prefix beam
    search (``searcher.topk = K``), taken at the best one.

    Arguments
    ---------
    log_probs : torch.Tensor
        Log-posteriors ``(batch, time, vocab)``.
    lengths : torch.Tensor
        Real frame counts (integers).
    searcher : speechbrain.decoders.ctc.CTCBaseSearcher
        E.g. from :func:`nbest_searcher`.

    Returns
    -------
    torch.Tensor
        One value per utterance in ``[1/K, 1]``.

    Example
    -------
    >>> searcher = nbest_searcher(["▁a", "▁b", "<blank>"], blank_index=2, topk=4, beam_size=20)
    >>> sure = torch.log_softmax(torch.tensor([[[9.0, 0, 0], [0, 0, 9]]]), -1)
    >>> unsure = torch.log_softmax(torch.zeros(1, 2, 3), -1)  # "a", "b": 1/3 each, "", "b a": 1/9
    >>> conf = nbest_confidence(torch.cat([sure, unsure]), torch.tensor([2, 2]), searcher)
    >>> bool(conf[0] > 0.9), round(float(conf[1]), 3)
    (True, 0.375)
    """
    values = []
    for row, length in enumerate(lengths.tolist()):
        # one utterance at a time, trimmed: no relative-length rounding
        hyps = searcher(log_probs[row : row + 1, :length].float().cpu())[0]
        values.append(nbest_posterior([h.lm_score for h in hyps]))
    return torch.tensor(values, dtype=torch.float64)


def edit_distance(reference, hypothesis):
    """Number of insertions, deletions and substitutions turning ``reference``
    into ``hypothesis`` (sequences: strings compare characters, lists words).

    Example
    -------
    >>> edit_distance("abc", "abd"), edit_distance("A B".split(), "A B C".split())
    (1, 1)
    """
    ops = count_ops(op_table(list(reference), list(hypothesis)))
    return ops["insertions"] + ops["deletions"] + ops["substitutions"]


def transcript_distance(reference, hypothesis):
    """Character error rate of ``hypothesis`` against ``reference`` (a
    fraction; an empty reference counts as one character).

    Example
    -------
    >>> transcript_distance("HELLO", "HELO"), transcript_distance("", "")
    (0.2, 0.0)
    """
    return edit_distance(reference, hypothesis) / max(1, len(reference))
