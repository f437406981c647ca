"""Gradient equilibrium (Li et al. 2019): the gradients at the exits' branch
points are rescaled as the formula says, the forward pass is unchanged, and
it is off by default, outside training and in old exports."""

import pathlib

import pytest
import torch

from speechbrain_ee.inference import EarlyExitASR
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.nnet.gradient_equilibrium import equilibrium_branch, scale_gradient
from speechbrain_ee.testing import TINY_ARCH, write_random_model_dir

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.randn(4, requires_grad=True)
    y = scale_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, 0.3 * torch.arange(4.0))


def chain_gradient(equilibrium, n=3):
    """A scalar chain of n "layers" h_k = a_k * h_{k-1} with an exit
    loss L_k = c_k * h_k after each; returns dL/dx for L = sum_k L_k."""
    a = [2.0, 3.0, 5.0][:n]
    c = [7.0, 11.0, 13.0][:n]
    x = torch.tensor(1.0, requires_grad=True)
    h, loss = x, 0.0
    for k in range(n):
        h = a[k] * h
        branch = h
        if equilibrium:
            branch, h = equilibrium_branch(h, k, n)
        loss = loss + c[k] * branch
    loss.backward()
    return x.grad.item(), a, c


def test_chain_gradient_matches_the_formula_by_hand():
    plain, a, c = chain_gradient(False)
    # plain sum: dL/dx = a0 c0 + a0 a1 c1 + a0 a1 a2 c2
    assert plain == pytest.approx(a[0] * c[0] + a[0] * a[1] * c[1] + a[0] * a[1] * a[2] * c[2])
    ge, _, _ = chain_gradient(True)
    # by hand, from the top (n = 3; 1-based i): g = g_exit / (n - i + 1) + (n - i) / (n - i + 1) * g_above
    g3 = c[2]                                   # top exit: 1/1 of its own loss
    g2 = c[1] / 2 + (1 / 2) * a[2] * g3          # exit 2 of 3
    g1 = c[0] / 3 + (2 / 3) * a[1] * g2          # exit 1 of 3
    assert ge == pytest.approx(a[0] * g1)
    # ... which is the mean, not the sum, of the three losses' gradients below the first exit
    assert ge == pytest.approx(plain / 3)


def tiny_encoder_model(gradient_equilibrium):
    torch.manual_seed(0)
    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (8,), dropout=0.0), d_model=16, nhead=2, d_ffn=32,
                                    num_layers=3, exit_layers=[1, 2, 3], kernel_size=3, dropout=0.0,
                                    gradient_equilibrium=gradient_equilibrium)
    return EarlyExitCTC(enc, ExitHeads(16, 7, 3))


def per_exit_losses(model, feats, lens):
    log_probs, _ = model(feats, lens)
    weights = torch.linspace(-1.0, 1.0, 7)  # any differentiable scalar per exit
    return [(lp * weights).mean() + lp[:, :, 0].pow(2).mean() for lp in log_probs], log_probs


def grads(loss, params):
    return torch.autograd.grad(loss, [p for _, p in params], allow_unused=True, retain_graph=True)


def test_encoder_gradients_follow_the_formula():
    feats, lens = torch.randn(2, 24, 20), torch.tensor([24, 17])
    plain = tiny_encoder_model(False).train()
    ge = tiny_encoder_model(True).train()
    ge.load_state_dict(plain.state_dict())  # same weights: the flag is no parameter
    params_plain = list(plain.named_parameters())
    params_ge = list(ge.named_parameters())

    losses, out_plain = per_exit_losses(plain, feats, lens)
    per_loss = [grads(loss, params_plain) for loss in losses]  # dL_j/dθ, plain model
    total, out_ge = per_exit_losses(ge, feats, lens)
    got = grads(sum(total), params_ge)

    for a, b in zip(out_plain, out_ge):  # forward outputs unchanged
        assert torch.equal(a, b)

    n = 3
    checked = set()
    for k, (name, _) in enumerate(params_ge):
        if name.startswith(("encoder.frontend", "encoder.input_projection", "encoder.layers.0.")):
            below = 0  # below the first exit: every loss, each 1/n
        elif name.startswith("encoder.layers.1."):
            below = 1  # between exit 1 and 2: losses 2 and 3, each 1/(n-1)
        elif name.startswith("encoder.layers.2."):
            below = 2
        else:
            continue  # exit norms and heads: each gets its own loss in full (checked below)
        expected = sum(per_loss[j][k] for j in range(below, n) if per_loss[j][k] is not None) / (n - below)
        assert got[k] is not None and torch.allclose(got[k], expected, atol=1e-6, rtol=1e-4), name
        checked.add(below)
        plain_sum = sum(per_loss[j][k] for j in range(n) if per_loss[j][k] is not None)
        if below < 2:  # a real rescaling there: GE differs from the plain sum
            assert not torch.allclose(got[k], plain_sum, atol=1e-6, rtol=1e-4), name
    assert checked == {0, 1, 2}
    for k, (name, _) in enumerate(params_ge):
        if name.startswith(("heads.", "encoder.exit_norms.")):
            j = int(name.split(".")[2])
            assert torch.allclose(got[k], per_loss[j][k], atol=1e-6, rtol=1e-4), name


def test_first_layer_gradient_is_the_mean_of_the_exit_gradients():
    feats, lens = torch.randn(2, 24, 20), torch.tensor([24, 17])
    plain, ge = tiny_encoder_model(False).train(), tiny_encoder_model(True).train()
    ge.load_state_dict(plain.state_dict())
    sum(per_exit_losses(plain, feats, lens)[0]).backward()
    sum(per_exit_losses(ge, feats, lens)[0]).backward()
    for p, q in zip(plain.encoder.layers[0].parameters(), ge.encoder.layers[0].parameters()):
        assert torch.allclose(q.grad, p.grad / 3, atol=1e-7, rtol=1e-4)
        assert p.grad.abs().sum() > 0


def test_off_outside_training_and_by_default():
    feats, lens = torch.randn(2, 24, 20), torch.tensor([24, 17])
    assert tiny_encoder_model(False).encoder.gradient_equilibrium is False
    assert EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (8,)), d_model=16, nhead=2, d_ffn=32, num_layers=1,
                                     exit_layers=[1]).gradient_equilibrium is False
    plain, ge = tiny_encoder_model(False).eval(), tiny_encoder_model(True).eval()
    ge.load_state_dict(plain.state_dict())
    assert not ge.encoder.equilibrium_active()
    sum(per_exit_losses(plain, feats, lens)[0]).backward()
    sum(per_exit_losses(ge, feats, lens)[0]).backward()  # eval mode: the plain sum
    for p, q in zip(plain.parameters(), ge.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad)
    ge.train()
    assert ge.encoder.equilibrium_active()
    with torch.no_grad():
        assert not ge.encoder.equilibrium_active()


def test_model_yaml_passes_the_flag_and_exports_load(tmp_path):
    arch = {**TINY_ARCH, "gradient_equilibrium": True}
    folder = write_random_model_dir(str(tmp_path / "model"), str(REPO / "hparams" / "conformer_ctc_small.yaml"),
                                    arch=arch)
    assert "gradient_equilibrium: true" in (tmp_path / "model" / "hyperparams.yaml").read_text()
    asr = EarlyExitASR.from_hparams(source=folder, savedir=str(tmp_path / "saved"))
    assert asr.mods.model.encoder.gradient_equilibrium is True
    old = EarlyExitASR.from_hparams(source=str(REPO / "pretrained" / "an4-conformer-ctc-ee"),
                                    savedir=str(tmp_path / "old"))  # exported before the flag existed
    assert "gradient_equilibrium" not in (REPO / "pretrained" / "an4-conformer-ctc-ee" / "model.yaml").read_text()
    assert old.mods.model.encoder.gradient_equilibrium is False
