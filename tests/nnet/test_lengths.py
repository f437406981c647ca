"""The modules accept SpeechBrain's relative lengths as well as frame counts."""

import pytest
import torch

from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.nnet.aed_model import EarlyExitAED, ExitDecoder


def tiny_encoder():
    torch.manual_seed(0)
    return EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (4, 4)), d_model=16, nhead=2, d_ffn=32,
                                     num_layers=2, exit_layers=[1, 2]).eval()


def test_ctc_model_relative_lengths_equal_frame_counts():
    model = EarlyExitCTC(tiny_encoder(), ExitHeads(16, 11, 2)).eval()
    feats = torch.rand(2, 40, 20)
    with torch.no_grad():
        by_count, count_lens = model(feats, torch.tensor([40, 30]))
        by_rel, rel_lens = model(feats, torch.tensor([1.0, 0.75]))
    assert count_lens.tolist() == [10, 8]
    assert rel_lens.tolist() == pytest.approx([1.0, 0.8])
    for a, b in zip(by_count, by_rel):
        assert torch.allclose(a, b)


def test_encoder_and_frontend_keep_the_callers_convention():
    encoder = tiny_encoder()
    feats = torch.rand(2, 40, 20)
    with torch.no_grad():
        _, rel = encoder(feats, torch.tensor([1.0, 0.5]))
        _, counts = encoder(feats, torch.tensor([40, 20]))
        _, front_rel = encoder.frontend(feats, torch.tensor([1.0, 0.5]))
    assert counts.tolist() == [10, 5]
    assert rel.tolist() == pytest.approx([1.0, 0.5])
    assert front_rel.tolist() == pytest.approx([1.0, 0.5])


def test_aed_model_relative_lengths():
    torch.manual_seed(0)
    model = EarlyExitAED(tiny_encoder(), ExitHeads(16, 11, 2), [ExitDecoder(11, 16, 2, 32, 1) for _ in range(2)],
                         ExitHeads(16, 11, 2)).eval()
    feats, tokens = torch.rand(2, 40, 20), torch.randint(0, 10, (2, 5))
    with torch.no_grad():
        ctc_c, seq_c, lens_c = model(feats, torch.tensor([40, 30]), tokens)
        ctc_r, seq_r, lens_r = model(feats, torch.tensor([1.0, 0.75]), tokens)
    assert lens_c.tolist() == [10, 8] and lens_r.tolist() == pytest.approx([1.0, 0.8])
    assert all(torch.allclose(a, b) for a, b in zip(seq_c, seq_r))


@pytest.mark.parametrize("bad", [torch.tensor([40.0, 30.0]), torch.tensor([1.0, -0.5]), torch.tensor([41, 30])])
def test_lengths_in_neither_convention_are_rejected(bad):
    model = EarlyExitCTC(tiny_encoder(), ExitHeads(16, 11, 2))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.rand(2, 40, 20), bad)
