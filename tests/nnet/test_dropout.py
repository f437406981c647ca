import pytest
import torch

from speechbrain_ee.nnet import EarlyExitConformerEncoder, MaskedConvFrontEnd
from speechbrain_ee.nnet.aed_model import ExitDecoder
from speechbrain_ee.nnet.dropout import FastDropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_mask_rate_and_independence(p):
    torch.manual_seed(0)
    mask = keep_mask((400, 500), p).float()
    assert abs(mask.mean().item() - (1 - p)) < 0.005
    # neighbours (the two halves of a draw in a cheaper scheme) are independent
    both = (mask[:, ::2] * mask[:, 1::2]).mean().item()
    assert abs(both - (1 - p) ** 2) < 0.01


def test_same_seed_same_mask_other_seed_other_mask():
    torch.manual_seed(3)
    first = keep_mask((64, 64), 0.3)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask((64, 64), 0.3))
    assert not torch.equal(first, keep_mask((64, 64), 0.3))


def test_inverted_dropout_values_and_gradient():
    drop = FastDropout(0.25).train()
    x = torch.full((50, 40), 3.0, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 4.0))  # 3 / 0.75
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / 0.75)


def test_identity_in_eval_and_at_p0_zeros_at_p1():
    x = torch.randn(5, 7)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))


def test_encoder_and_decoder_use_it_without_changing_checkpoints():
    encoder = EarlyExitConformerEncoder(
        MaskedConvFrontEnd(20, (4, 4)), d_model=16, nhead=2, d_ffn=32, num_layers=2, exit_layers=[2]
    )
    decoder = ExitDecoder(num_classes=10, d_model=16, nhead=2, d_ffn=32, num_layers=1)
    for module in (encoder, decoder):
        drops = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)]
        assert drops and all(type(m) is FastDropout for m in drops)
    plain = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.2))
    keys = list(plain.state_dict())
    assert list(use_fast_dropout(plain).state_dict()) == keys
    assert plain[1].p == 0.2
