import torch

from speechbrain_ee.losses import early_exit_ctc_loss


def reference_ctc(log_probs, in_lens, targets, tgt_lens, blank):
    """Plain PyTorch CTC, mean over the batch of per-utterance losses divided by target length."""
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, in_lens, tgt_lens, blank=blank,
        reduction="none", zero_infinity=True,
    )
    return (loss / tgt_lens).mean()


def test_loss_is_sum_of_exit_ctc():
    torch.manual_seed(1)
    log_probs = [torch.randn(3, 30, 8).log_softmax(-1) for _ in range(4)]
    targets = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0], [7, 0, 0, 0]])
    in_lens, tgt_lens = torch.tensor([30, 25, 12]), torch.tensor([4, 2, 1])
    total, per_exit = early_exit_ctc_loss(
        log_probs, in_lens / 30, targets, tgt_lens / 4, blank_index=0
    )
    expected = [reference_ctc(lp, in_lens, targets, tgt_lens, 0) for lp in log_probs]
    for got, exp in zip(per_exit, expected):
        assert torch.allclose(got, exp, atol=1e-5)
    assert torch.allclose(total, sum(expected), atol=1e-5)


def test_exit_weights_and_last_blank():
    log_probs = [torch.randn(2, 20, 6).log_softmax(-1) for _ in range(2)]
    targets = torch.tensor([[0, 1, 2], [3, 4, 0]])
    total, per_exit = early_exit_ctc_loss(
        log_probs, torch.ones(2), targets, torch.tensor([1.0, 2 / 3]), blank_index=5,
        exit_weights=[0.25, 1.0],
    )
    assert torch.allclose(total, 0.25 * per_exit[0] + per_exit[1])
    assert all(torch.isfinite(p) for p in per_exit)


def test_weight_count_mismatch():
    import pytest

    with pytest.raises(ValueError, match="exit weights"):
        early_exit_ctc_loss([torch.zeros(1, 5, 3)], torch.ones(1), torch.ones(1, 1).long(),
                            torch.ones(1), 0, exit_weights=[1.0, 1.0])
