"""Early-exit training objectives (Wright et al. 2023, Eq. 2)."""

import torch
from speechbrain.nnet.losses import ctc_loss


def early_exit_ctc_loss(log_probs, input_lens, targets, target_lens, blank_index,
                        exit_weights=None, reduction="mean"):
    """Sum over exits of the CTC loss of each exit.

    Arguments
    ---------
    log_probs : list of torch.Tensor
        Per-exit log-posteriors, each (batch, time, classes).
    input_lens : torch.Tensor
        Relative lengths of the exit outputs (SpeechBrain convention).
    targets : torch.Tensor
        Token ids without BOS/EOS, (batch, max_target_len).
    target_lens : torch.Tensor
        Relative target lengths.
    blank_index : int
        CTC blank.
    exit_weights : list of float, optional
        Weight of each exit (default 1 each, i.e. the paper's plain sum).
    reduction : str
        Passed to SpeechBrain's ``ctc_loss``.

    Returns
    -------
    total : torch.Tensor
        Weighted sum of the exit losses.
    per_exit : list of torch.Tensor
        The unweighted loss of each exit.

    Example
    -------
    >>> lp = [torch.randn(2, 20, 5).log_softmax(-1) for _ in range(3)]
    >>> total, per_exit = early_exit_ctc_loss(lp, torch.ones(2),
    ...     torch.tensor([[1, 2], [3, 0]]), torch.tensor([1.0, 0.5]), 0)
    >>> torch.allclose(total, sum(per_exit))
    True
    """
    if exit_weights is None:
        exit_weights = [1.0] * len(log_probs)
    if len(exit_weights) != len(log_probs):
        raise ValueError(f"{len(exit_weights)} exit weights for {len(log_probs)} exits")
    per_exit = [
        ctc_loss(lp, targets, input_lens, target_lens, blank_index, reduction=reduction)
        for lp in log_probs
    ]
    total = sum(w * loss for w, loss in zip(exit_weights, per_exit))
    return total, per_exit
