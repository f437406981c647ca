"""Early-exit training objectives (Wright et al. 2023, Eq. 2), the per-exit
loss weights (:func:`resolve_exit_weights`) and the self-distillation of the
lower exits from the top one (:func:`exit_distillation_loss`)."""

import torch
from speechbrain.nnet import losses as sb_losses
from speechbrain.nnet.losses import kldiv_loss

from speechbrain_ee.checks import check_number, is_real
from speechbrain_ee.nnet.lengths import as_counts, length_mask

#: Named ``exit_weights`` schemes (besides a list of numbers).
EXIT_WEIGHT_SCHEMES = ("uniform", "depth")


def resolve_exit_weights(exit_weights, num_exits, exit_layers=None):
    """The per-exit loss weights as a list of floats, checked.

    Arguments
    ---------
    exit_weights : None, str or list of float
        ``None`` or ``"uniform"``: every exit 1 (Eq. 2, the plain sum);
        ``"depth"``: each exit's weight proportional to its layer, normalised
        so that the weights sum to the number of exits (the loss keeps the
        scale of the plain sum); a list: one finite weight >= 0 per exit, not
        all 0.
    num_exits : int
        Number of exits.
    exit_layers : list of int, optional
        Layer of each exit (needed by ``"depth"``).

    Returns
    -------
    list of float

    Example
    -------
    >>> resolve_exit_weights(None, 3)
    [1.0, 1.0, 1.0]
    >>> resolve_exit_weights("depth", 3, [2, 4, 6])
    [0.5, 1.0, 1.5]
    >>> resolve_exit_weights([1, 0.5], 3)
    Traceback (most recent call last):
    ...
    ValueError: exit_weights: 2 exit weights for 3 exits
    """
    if torch.is_tensor(exit_weights):
        exit_weights = exit_weights.tolist()
    if exit_weights is None or exit_weights == "uniform":
        return [1.0] * num_exits
    if isinstance(exit_weights, str):
        if exit_weights != "depth":
            raise ValueError(f"exit_weights: unknown scheme {exit_weights!r} "
                             f"(one of {', '.join(EXIT_WEIGHT_SCHEMES)}, or a list of numbers)")
        if exit_layers is None or len(exit_layers) != num_exits:
            raise ValueError(f"exit_weights: the 'depth' scheme needs the layers of the {num_exits} exits")
        return [num_exits * layer / sum(exit_layers) for layer in exit_layers]
    if not hasattr(exit_weights, "__len__") or not all(is_real(w) for w in exit_weights):
        raise ValueError(f"exit_weights must be null, a scheme ({', '.join(EXIT_WEIGHT_SCHEMES)}) "
                         f"or a list of numbers, got {exit_weights!r}")
    weights = [float(w) for w in exit_weights]
    if len(weights) != num_exits:
        raise ValueError(f"exit_weights: {len(weights)} exit weights for {num_exits} exits")
    for index, weight in enumerate(weights):
        check_number(f"exit_weights[{index}]", weight, minimum=0)
    if not any(weights):
        raise ValueError(f"exit_weights must not all be 0, got {weights}")
    return weights


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
        Weight of each exit (default 1 each, i.e. the paper's plain sum),
        checked by :func:`resolve_exit_weights` (a named scheme needs the
        exit layers: resolve it first).
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
    exit_weights = resolve_exit_weights(exit_weights, len(log_probs))
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
        Weight of each exit (default 1 each), checked by
        :func:`resolve_exit_weights`.
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
    if len(seq_log_probs) != len(ctc_log_probs):
        raise ValueError(f"{len(seq_log_probs)} decoder outputs for {len(ctc_log_probs)} CTC exits")
    exit_weights = resolve_exit_weights(exit_weights, len(ctc_log_probs))
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


def exit_distillation_loss(log_probs, lengths, temperature=1.0, blank_index=None, blank_threshold=None):
    """Self-distillation of the exits: every lower exit learns the top exit's
    CTC posteriors, frame by frame.

    For each exit ``i`` below the top one, the term is
    ``T^2 * KL(p_top^T || p_i^T)`` averaged over the kept frames, where
    ``p^T = softmax(log_probs / T)`` (the posteriors softened by the
    temperature ``T``; the ``T^2`` keeps the gradient scale independent of
    ``T``, Hinton et al. 2015). The teacher (top exit) is detached: its own
    loss and its gradients are untouched, and no KD gradient reaches the
    layers or head above the student's exit through it.

    Frames kept: the real (non-padded) ones, and with ``blank_threshold``
    below 1, only those where the teacher's blank probability (at
    temperature 1) is at most ``blank_threshold``. CTC posteriors are mostly
    blank; without the threshold the KL is mostly about agreeing on blanks.
    With no frame kept the terms are 0 (still part of the graph).

    Arguments
    ---------
    log_probs : list of torch.Tensor
        Per-exit log-posteriors, each (batch, time, classes), the top exit last.
    lengths : torch.Tensor
        Relative lengths (SpeechBrain's convention) or integer frame counts.
    temperature : float
        Softening temperature ``T`` > 0.
    blank_index : int, optional
        CTC blank (needed with ``blank_threshold``).
    blank_threshold : float, optional
        Drop the frames where the teacher's blank probability exceeds it, in
        (0, 1]; None or 1.0 keeps every real frame.

    Returns
    -------
    total : torch.Tensor
        Sum of the lower exits' terms (0 with a single exit).
    per_exit : list of torch.Tensor
        The term of each exit but the top one.

    Example
    -------
    >>> lp = [torch.randn(2, 10, 5).log_softmax(-1) for _ in range(3)]
    >>> total, per_exit = exit_distillation_loss(lp, torch.tensor([1.0, 0.6]), temperature=2.0)
    >>> len(per_exit), bool(torch.isclose(total, sum(per_exit)))
    (2, True)
    >>> exit_distillation_loss([lp[0], lp[0]], torch.ones(2))[0].item()
    0.0
    >>> exit_distillation_loss(lp, torch.ones(2), temperature=0)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be a finite number > 0, got 0
    """
    check_distillation_options(temperature, blank_index, blank_threshold)
    log_probs = list(log_probs)
    if not log_probs:
        raise ValueError("exit_distillation_loss: no exit outputs")
    teacher = log_probs[-1].detach()
    if any(lp.shape != teacher.shape for lp in log_probs):
        raise ValueError(f"exit_distillation_loss: the exits' outputs differ in shape: "
                         f"{[tuple(lp.shape) for lp in log_probs]}")
    if blank_index is not None and not 0 <= blank_index < teacher.shape[-1]:
        raise ValueError(f"blank_index {blank_index} outside 0..{teacher.shape[-1] - 1} (the classes)")
    counts, _ = as_counts(lengths.to(teacher.device), teacher.shape[1])
    keep = length_mask(counts, teacher.shape[1])
    if blank_threshold is not None and blank_threshold < 1.0:
        keep = keep & (teacher[..., blank_index].exp() <= blank_threshold)
    keep = keep.to(teacher.dtype)
    frames = keep.sum().clamp(min=1.0)
    soft_teacher = torch.log_softmax(teacher / temperature, dim=-1)
    per_exit = []
    for student in log_probs[:-1]:
        soft_student = torch.log_softmax(student / temperature, dim=-1)
        kl = torch.nn.functional.kl_div(soft_student, soft_teacher, reduction="none", log_target=True).sum(-1)
        per_exit.append(temperature ** 2 * (kl * keep).sum() / frames)
    total = sum(per_exit) if per_exit else teacher.new_zeros(())
    return total, per_exit


def check_distillation_options(temperature, blank_index=None, blank_threshold=None, prefix=""):
    """Raises a one-line ``ValueError`` naming the bad option of
    :func:`exit_distillation_loss` (``prefix`` + its name: a Brain's
    ``distill_temperature``).

    Example
    -------
    >>> check_distillation_options(2.0, 28, 0.95)
    >>> check_distillation_options(1.0, None, 0.9)
    Traceback (most recent call last):
    ...
    ValueError: blank_threshold 0.9 needs blank_index (the CTC blank)
    """
    check_number(f"{prefix}temperature", temperature, above=0)
    check_number(f"{prefix}blank_threshold", blank_threshold, above=0, maximum=1, allow_none=True)
    check_number("blank_index", blank_index, integer=True, allow_none=True)
    if blank_threshold is not None and blank_threshold < 1 and blank_index is None:
        raise ValueError(f"{prefix}blank_threshold {blank_threshold} needs blank_index (the CTC blank)")
