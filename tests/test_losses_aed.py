"""Joint CTC/attention loss of the early-exit AED model."""

import pytest
import torch
from speechbrain.nnet.losses import ctc_loss, kldiv_loss

from speechbrain_ee.losses import early_exit_joint_loss, sequence_ce_loss

BOS, EOS, BLANK = 1, 2, 7


def batch():
    torch.manual_seed(0)
    ctc = [torch.randn(2, 12, 8, requires_grad=True).log_softmax(-1) for _ in range(3)]
    seq = [torch.randn(2, 4, 8, requires_grad=True).log_softmax(-1) for _ in range(3)]
    tokens = torch.tensor([[3, 4, 5], [6, 0, 0]])
    tokens_lens = torch.tensor([1.0, 1 / 3])
    tokens_eos = torch.tensor([[3, 4, 5, EOS], [6, EOS, 0, 0]])
    eos_lens = torch.tensor([1.0, 0.5])
    return ctc, seq, torch.tensor([1.0, 0.75]), tokens, tokens_lens, tokens_eos, eos_lens


def test_ce_ignores_padding():
    _, seq, _, _, _, tokens_eos, eos_lens = batch()
    ref = sequence_ce_loss(seq[0], tokens_eos, eos_lens, BOS)
    for pad in (0, 3, EOS, 6):
        other = tokens_eos.clone()
        other[1, 2:] = pad
        assert torch.allclose(sequence_ce_loss(seq[0], other, eos_lens, BOS), ref)
    # changing the posteriors at padded positions changes nothing either
    noisy = seq[0].detach().clone()
    noisy[1, 2:] = torch.randn(2, 8).log_softmax(-1)
    assert torch.allclose(sequence_ce_loss(noisy, tokens_eos, eos_lens, BOS), ref)
    # but a real position does count
    noisy[1, 1] = torch.randn(8).log_softmax(-1)
    assert not torch.allclose(sequence_ce_loss(noisy, tokens_eos, eos_lens, BOS), ref)


def test_ce_equals_kldiv_on_the_real_tokens():
    _, seq, _, _, _, tokens_eos, eos_lens = batch()
    expected = (kldiv_loss(seq[0][:1], tokens_eos[:1], label_smoothing=0.1, pad_idx=BOS, reduction="sum")
                + kldiv_loss(seq[0][1:, :2], tokens_eos[1:, :2], label_smoothing=0.1, pad_idx=BOS,
                             reduction="sum")) / 2
    assert torch.allclose(sequence_ce_loss(seq[0], tokens_eos, eos_lens, BOS, 0.1), expected)


def test_ce_rejects_pad_index_as_target():
    _, seq, _, _, _, tokens_eos, eos_lens = batch()
    with pytest.raises(ValueError, match="pad_index 3 occurs as a real target"):
        sequence_ce_loss(seq[0], tokens_eos, eos_lens, 3)


def test_joint_loss_is_sum_over_exits_of_weighted_ctc_and_ce():
    ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens = batch()
    total, per_exit = early_exit_joint_loss(ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens,
                                            BLANK, BOS, ctc_weight=0.3, label_smoothing=0.1)
    expected = []
    for c, s in zip(ctc, seq):
        # both terms summed per utterance, averaged over the batch (SpeechBrain's loss_reduction)
        expected.append(0.3 * ctc_loss(c, tokens, in_lens, tokens_lens, BLANK, reduction="batchmean")
                        + 0.7 * sequence_ce_loss(s, tokens_eos, eos_lens, BOS, 0.1, reduction="batchmean"))
    assert len(per_exit) == 3
    for got, want in zip(per_exit, expected):
        assert torch.allclose(got, want)
    assert torch.allclose(total, sum(expected))
    total.backward()  # gradients reach every exit
    weighted, _ = early_exit_joint_loss(ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens,
                                        BLANK, BOS, exit_weights=[0.0, 0.0, 2.0])
    assert torch.allclose(weighted, 2 * expected[2])


def test_joint_loss_terms_share_one_reduction():
    ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens = batch()
    _, ctc_only = early_exit_joint_loss(ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens,
                                        BLANK, BOS, ctc_weight=1.0, reduction="sum")
    assert torch.allclose(ctc_only[0], ctc_loss(ctc[0], tokens, in_lens, tokens_lens, BLANK, reduction="sum"))
    _, ce_only = early_exit_joint_loss(ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens,
                                       BLANK, BOS, ctc_weight=0.0, reduction="sum")
    assert torch.allclose(ce_only[0], sequence_ce_loss(seq[0], tokens_eos, eos_lens, BOS, 0.1, reduction="sum"))


def test_joint_loss_rejects_mismatched_exits():
    ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens = batch()
    with pytest.raises(ValueError, match="2 decoder outputs for 3 CTC exits"):
        early_exit_joint_loss(ctc, seq[:2], in_lens, tokens, tokens_lens, tokens_eos, eos_lens, BLANK, BOS)


def test_skipped_decoders_keep_the_loss_unbiased():
    """With k of n decoders run, the skipped exits give their CTC term only and
    the others' CE is scaled by n/k: averaged over all k-subsets of exits the
    loss is the full joint loss, exit by exit."""
    from itertools import combinations

    ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens = batch()
    args = (in_lens, tokens, tokens_lens, tokens_eos, eos_lens, BLANK, BOS)
    full_total, full_per_exit = early_exit_joint_loss(ctc, seq, *args)
    subsets = list(combinations(range(3), 2))
    totals, per_exit_sums = [], torch.zeros(3)
    for subset in subsets:
        partial_seq = [s if i in subset else None for i, s in enumerate(seq)]
        total, per_exit = early_exit_joint_loss(ctc, partial_seq, *args)
        skipped = ({0, 1, 2} - set(subset)).pop()
        ctc_only, _ = early_exit_joint_loss([ctc[skipped]], [seq[skipped]], *args, ctc_weight=1.0)
        assert torch.allclose(per_exit[skipped], 0.3 * ctc_only)
        totals.append(total)
        per_exit_sums += torch.stack(per_exit).detach()
    assert torch.allclose(sum(totals) / len(subsets), full_total)
    assert torch.allclose(per_exit_sums / len(subsets), torch.stack(full_per_exit).detach())


def test_no_decoder_output_is_rejected():
    ctc, seq, in_lens, tokens, tokens_lens, tokens_eos, eos_lens = batch()
    with pytest.raises(ValueError, match="at least one exit needs its CE term"):
        early_exit_joint_loss(ctc, [None] * 3, in_lens, tokens, tokens_lens, tokens_eos, eos_lens,
                              BLANK, BOS)
