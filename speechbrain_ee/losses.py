"""Early-exit training objectives (Wright et al. 2023, Eq. 2)."""

import torch
from speechbrain.nnet import losses as sb_losses
from speechbrain.nnet.losses import kldiv_loss


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
        sb_losses.ctc_loss(lp, targets, input_lens, target_lens, blank_index, reduction=reduction)
        for lp in log_probs
    ]
    total = sum(w * loss for w, loss in zip(exit_weights, per_exit))
    return total, per_exit


def ctc_loss(log_probs, targets, input_lens, target_lens, blank_index, reduction="mean", exit_weights=None):
    """The early-exit CTC loss (Eq. 2) with the call signature of
    SpeechBrain's :func:`speechbrain.nnet.losses.ctc_loss`, so it drops into
    a project's ``compute_objectives`` (``ctc_cost: !name:speechbrain_ee.losses.ctc_loss``).

    Arguments
    ---------
    log_probs : list of torch.Tensor or torch.Tensor
        Per-exit log-posteriors, each (batch, time, classes), as a list or
        stacked (exits, batch, time, classes); a single (batch, time,
        classes) tensor is one exit (SpeechBrain's own loss).
    targets : torch.Tensor
        Token ids, (batch, max_target_len).
    input_lens, target_lens : torch.Tensor
        Relative lengths (SpeechBrain's convention).
    blank_index : int
        CTC blank.
    reduction : str
        As SpeechBrain's ``ctc_loss``.
    exit_weights : list of float, optional
        Weight of each exit (default 1 each).

    Returns
    -------
    torch.Tensor
        The weighted sum of the exits' losses; :func:`early_exit_ctc_loss`
        also returns each exit's term.

    Example
    -------
    >>> from speechbrain.nnet.losses import ctc_loss as sb_ctc_loss
    >>> lp = [torch.randn(2, 20, 5).log_softmax(-1) for _ in range(3)]
    >>> tgt, tl, il = torch.tensor([[1, 2], [3, 0]]), torch.tensor([1.0, 0.5]), torch.ones(2)
    >>> total = ctc_loss(lp, tgt, il, tl, blank_index=4)
    >>> bool(torch.isclose(total, sum(sb_ctc_loss(x, tgt, il, tl, 4) for x in lp)))
    True
    >>> bool(torch.isclose(ctc_loss(lp[0], tgt, il, tl, 4), sb_ctc_loss(lp[0], tgt, il, tl, 4)))
    True
    """
    if torch.is_tensor(log_probs) and log_probs.dim() == 3:
        log_probs = [log_probs]
    total, _ = early_exit_ctc_loss(list(log_probs), input_lens, targets, target_lens, blank_index,
                                   exit_weights=exit_weights, reduction=reduction)
    return total


def sequence_ce_loss(log_probs, targets, target_lens, pad_index, label_smoothing=0.1,
                     reduction="batchmean"):
    """Decoder cross-entropy as in SpeechBrain's transformer recipes
    (``kldiv_loss`` with label smoothing); padding never counts.

    SpeechBrain's ``kldiv_loss`` with label smoothing ignores the positions
    whose target equals ``pad_idx``, whatever the lengths say, so every
    position beyond ``target_lens`` is set to ``pad_index`` first.
    ``pad_index`` must never be a real target (the BOS index is a safe choice:
    targets are tokens + EOS).

    Arguments
    ---------
    log_probs : torch.Tensor
        Decoder log-posteriors, (batch, len, classes).
    targets : torch.Tensor
        Tokens followed by EOS, (batch, len), padded with anything.
    target_lens : torch.Tensor
        Relative lengths of ``targets``.
    pad_index : int
        Index that marks the positions to ignore.
    label_smoothing : float
        Label smoothing of ``kldiv_loss``.
    reduction : str
        Passed to ``kldiv_loss`` (``"batchmean"`` as SpeechBrain's recipes).

    Example
    -------
    >>> lp = torch.randn(2, 4, 6).log_softmax(-1)
    >>> a = sequence_ce_loss(lp, torch.tensor([[3, 4, 2, 0], [3, 2, 0, 0]]), torch.tensor([0.75, 0.5]), 1)
    >>> b = sequence_ce_loss(lp, torch.tensor([[3, 4, 2, 5], [3, 2, 5, 4]]), torch.tensor([0.75, 0.5]), 1)
    >>> torch.allclose(a, b)
    True
    """
    max_len = targets.shape[1]
    real = torch.arange(max_len, device=targets.device)[None, :] < torch.round(
        target_lens * max_len
    ).long()[:, None]
    if bool(((targets == pad_index) & real).any()):
        raise ValueError(f"pad_index {pad_index} occurs as a real target")
    targets = targets.masked_fill(~real, pad_index)
    return kldiv_loss(log_probs, targets, length=target_lens, label_smoothing=label_smoothing,
                      pad_idx=pad_index, reduction=reduction)


def early_exit_joint_loss(ctc_log_probs, seq_log_probs, input_lens, tokens, token_lens,
                          tokens_eos, tokens_eos_lens, blank_index, pad_index, ctc_weight=0.3,
                          label_smoothing=0.1, exit_weights=None, reduction="batchmean"):
    """Sum over exits of ``ctc_weight * CTC + (1 - ctc_weight) * CE`` (the
    joint CTC/attention objective at every exit; Wright et al. Eq. 2/4).

    Both terms use the same ``reduction`` (SpeechBrain's conformer recipes:
    ``loss_reduction: batchmean`` for ``ctc_cost`` and ``seq_cost``, i.e.
    summed over the tokens of an utterance, averaged over the batch), so the
    0.3 / 0.7 weights mean what they say. With the CTC averaged per token
    (``ctc_loss``'s default ``"mean"``) and the CE summed per utterance, CTC
    weighed about 1/L of its intended share (L tokens per utterance): on AN4
    the CTC exits left the blank stage only after ~10 epochs and the
    decoders learned slowly.

    Arguments
    ---------
    ctc_log_probs, seq_log_probs : list of torch.Tensor
        Per-exit CTC (B, T, C) and decoder (B, L, C) log-posteriors. An
        entry of ``seq_log_probs`` may be None (that exit's decoder did not
        run this step, see ``decoder_exits_per_step`` of
        :class:`~speechbrain_ee.brains.aed.EarlyExitAEDBrain`): its exit then
        contributes its CTC term only, and the CE of the k exits that ran is
        scaled by n/k, so that with the k exits drawn uniformly the loss is an
        unbiased estimate of the full sum (every exit's CE term is kept with
        probability k/n).
    input_lens : torch.Tensor
        Relative lengths of the CTC outputs.
    tokens, token_lens : torch.Tensor
        CTC targets (no BOS/EOS) and their relative lengths.
    tokens_eos, tokens_eos_lens : torch.Tensor
        Decoder targets (tokens + EOS) and their relative lengths.
    blank_index, pad_index : int
        CTC blank; index ignored by the CE (see :func:`sequence_ce_loss`).
    ctc_weight : float
        Weight of the CTC term (0.3 in the SpeechBrain conformer recipes).
    label_smoothing : float
        Label smoothing of the CE term.
    exit_weights : list of float, optional
        Weight of each exit (default 1 each).
    reduction : str
        Reduction of both terms (``ctc_loss`` and ``kldiv_loss``).

    Returns
    -------
    total : torch.Tensor
        Weighted sum of the exit losses.
    per_exit : list of torch.Tensor
        The joint loss of each exit.

    Example
    -------
    >>> ctc = [torch.randn(2, 12, 6).log_softmax(-1) for _ in range(2)]
    >>> seq = [torch.randn(2, 3, 6).log_softmax(-1) for _ in range(2)]
    >>> total, per_exit = early_exit_joint_loss(ctc, seq, torch.ones(2),
    ...     torch.tensor([[3, 4], [3, 0]]), torch.tensor([1.0, 0.5]),
    ...     torch.tensor([[3, 4, 2], [3, 2, 0]]), torch.tensor([1.0, 2 / 3]), 5, 1)
    >>> torch.allclose(total, per_exit[0] + per_exit[1])
    True
    """
    if exit_weights is None:
        exit_weights = [1.0] * len(ctc_log_probs)
    if len(seq_log_probs) != len(ctc_log_probs):
        raise ValueError(f"{len(seq_log_probs)} decoder outputs for {len(ctc_log_probs)} CTC exits")
    if len(exit_weights) != len(ctc_log_probs):
        raise ValueError(f"{len(exit_weights)} exit weights for {len(ctc_log_probs)} exits")
    _, ctc_per_exit = early_exit_ctc_loss(
        ctc_log_probs, input_lens, tokens, token_lens, blank_index, reduction=reduction
    )
    sampled = sum(seq is not None for seq in seq_log_probs)
    if sampled == 0:
        raise ValueError("no decoder output: at least one exit needs its CE term")
    ce_scale = len(seq_log_probs) / sampled  # 1 when every decoder ran
    per_exit = []
    for ctc, seq in zip(ctc_per_exit, seq_log_probs):
        loss = ctc_weight * ctc
        if seq is not None:  # this exit's decoder ran
            loss = loss + (1 - ctc_weight) * ce_scale * sequence_ce_loss(
                seq, tokens_eos, tokens_eos_lens, pad_index, label_smoothing, reduction=reduction)
        per_exit.append(loss)
    total = sum(w * loss for w, loss in zip(exit_weights, per_exit))
    return total, per_exit
