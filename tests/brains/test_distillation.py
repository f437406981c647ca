"""EarlyExitCTCBrain with self-distillation and exit-loss weighting: a fit
step runs on a tiny random model and logs the per-exit KD terms; the KD term
trains the lower exits and never the top exit through the teacher; the AED
Brain refuses distillation rather than ignore it."""

from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.lobes.features import Fbank
from speechbrain.utils.epoch_loop import EpochCounter

from speechbrain_ee.brains.aed import EarlyExitAEDBrain
from speechbrain_ee.brains.ctc import EarlyExitCTCBrain
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd

BLANK = 6


def tiny_model(gradient_equilibrium=False):
    torch.manual_seed(0)
    enc = EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (8,), dropout=0.0), d_model=16, nhead=2, d_ffn=32,
                                    num_layers=2, exit_layers=[1, 2], kernel_size=3, dropout=0.0,
                                    gradient_equilibrium=gradient_equilibrium)
    return EarlyExitCTC(enc, ExitHeads(16, BLANK + 1, 2))


def utterances():
    gen = torch.Generator().manual_seed(1)
    return {
        "u1": {"sig": 0.1 * torch.randn(4000, generator=gen), "tokens": torch.tensor([1, 2, 3])},
        "u2": {"sig": 0.1 * torch.randn(3000, generator=gen), "tokens": torch.tensor([4, 5])},
    }


def make_brain(model, brain_class=EarlyExitCTCBrain, **hparams):
    hparams = {"tokenizer": SimpleNamespace(), "blank_index": BLANK, "compute_features": Fbank(n_mels=20),
               **hparams}
    return brain_class(modules={"model": model}, opt_class=lambda params: torch.optim.SGD(params, lr=0.5),
                       hparams=hparams, run_opts={"device": "cpu"})


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "data_parallel"])
def test_one_fit_step_with_distillation_logs_kd_terms(wrapped):
    model = tiny_model(gradient_equilibrium=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = torch.nn.DataParallel(model) if wrapped else model  # attributes read from the unwrapped model
    brain = make_brain(module, distill_weight=0.5, distill_temperature=2.0, distill_blank_threshold=0.95,
                       exit_weights="depth")
    data = DynamicItemDataset(utterances(), output_keys=["id", "sig", "tokens"])
    brain.fit(EpochCounter(1), data, train_loader_kwargs={"batch_size": 2})
    stats = brain.train_stats
    assert set(stats) == {"loss", "loss_exit1", "kd_exit1", "loss_exit2"}  # KD only for the lower exit
    assert stats["kd_exit1"] >= 0 and torch.isfinite(torch.tensor(stats["loss"]))
    assert brain.exit_weights() == pytest.approx([2 / 3, 4 / 3])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("heads.") for k in changed) and any(k.startswith("encoder.layers.0") for k in changed)


def test_without_distillation_no_kd_term_is_logged():
    brain = make_brain(tiny_model())
    data = DynamicItemDataset(utterances(), output_keys=["id", "sig", "tokens"])
    brain.fit(EpochCounter(1), data, train_loader_kwargs={"batch_size": 2})
    assert set(brain.train_stats) == {"loss", "loss_exit1", "loss_exit2"}


def objective_gradients(brain, model, batch):
    brain.on_stage_start(sb.Stage.TRAIN)
    loss = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    names, params = zip(*model.named_parameters())
    return dict(zip(names, torch.autograd.grad(loss, params, allow_unused=True))), loss


def test_kd_reaches_the_lower_exit_but_not_the_top_exit():
    model = tiny_model().train()
    batch = PaddedBatch([{"id": k, **v} for k, v in utterances().items()])
    brain = make_brain(model, distill_weight=1.0, distill_temperature=2.0)
    with_kd, loss_kd = objective_gradients(brain, model, batch)
    brain.hparams.distill_weight = 0.0
    without, loss_plain = objective_gradients(brain, model, batch)
    assert loss_kd > loss_plain  # the KD term counts in the loss
    top = ("heads.linears.1.", "encoder.exit_norms.1.", "encoder.layers.1.")  # above exit 1: the teacher's own
    lower = ("heads.linears.0.", "encoder.exit_norms.0.", "encoder.layers.0.")
    for name, grad in with_kd.items():
        if name.startswith(top):
            assert torch.equal(grad, without[name]), f"KD reached {name} through the teacher"
        elif name.startswith(lower):
            assert not torch.allclose(grad, without[name]), f"KD did not reach {name}"
    assert any(name.startswith("heads.linears.1.") for name in with_kd)


@pytest.mark.parametrize("hparams, message", [
    ({"distill_weight": -1.0}, "distill_weight must be a finite number >= 0, got -1.0"),
    ({"distill_weight": float("nan")}, "distill_weight must be a finite number >= 0"),
    ({"distill_weight": 1.0, "distill_temperature": 0.0}, "distill_temperature must be a finite number > 0"),
    ({"distill_weight": 1.0, "distill_blank_threshold": 2.0}, "distill_blank_threshold must be null or a finite number > 0 and <= 1, got 2.0"),
    ({"distill_weight": 1.0, "distill_start_epoch": 0}, "distill_start_epoch must be an integer >= 1, got 0"),
    ({"exit_weights": [1.0]}, "exit_weights: 1 exit weights for 2 exits"),
    ({"exit_weights": "deep"}, "exit_weights: unknown scheme 'deep'"),
])
def test_bad_options_name_the_key(hparams, message):
    model = tiny_model().train()
    batch = PaddedBatch([{"id": k, **v} for k, v in utterances().items()])
    brain = make_brain(model, **hparams)
    with pytest.raises(ValueError, match=message):
        objective_gradients(brain, model, batch)


def test_aed_brain_refuses_distillation_and_resolves_exit_weights():
    brain = make_brain(tiny_model(), EarlyExitAEDBrain, distill_weight=0.5, bos_index=1, eos_index=2,
                       exit_weights="depth")
    with pytest.raises(ValueError, match="distill_weight 0.5: self-distillation is for the CTC Brain"):
        brain.check_contract()
    assert brain.exit_weights() == pytest.approx([2 / 3, 4 / 3])  # the same scheme resolution


def test_dev_loss_is_the_ctc_objective_with_kd_only_logged():
    model = tiny_model().eval()
    batch = PaddedBatch([{"id": k, "wrd": "A B", **v} for k, v in utterances().items()])
    losses = {}
    tokenizer = SimpleNamespace(decode_ids=lambda ids: " ".join(map(str, ids)))
    for weight in (0.0, 1.0):
        brain = make_brain(model, distill_weight=weight, distill_temperature=2.0, tokenizer=tokenizer)
        brain.on_stage_start(sb.Stage.VALID)
        with torch.no_grad():
            predictions = brain.compute_forward(batch, sb.Stage.VALID)
            losses[weight] = brain.compute_objectives(predictions, batch, sb.Stage.VALID)
            train_loss = brain.compute_objectives(predictions, batch, sb.Stage.TRAIN)
        stats = brain.exit_stats(sb.Stage.VALID)
    assert torch.allclose(losses[1.0], losses[0.0])  # dev loss comparable with a plain run's
    assert train_loss > losses[1.0]  # in training the KD term counts
    assert stats["kd_exit1"] > 0  # and at dev it is logged


def test_distillation_counts_in_training_from_its_start_epoch_on():
    model = tiny_model().train()
    batch = PaddedBatch([{"id": k, **v} for k, v in utterances().items()])
    brain = make_brain(model, distill_weight=1.0, distill_temperature=2.0, distill_start_epoch=3)
    losses = {}
    for epoch in (1, 2, 3, 4):
        brain.on_stage_start(sb.Stage.TRAIN, epoch)
        with torch.no_grad():
            losses[epoch] = brain.compute_objectives(brain.compute_forward(batch, sb.Stage.TRAIN), batch,
                                                     sb.Stage.TRAIN)
        assert brain.kd_loss_count == 1  # logged in every epoch
    plain = make_brain(model)
    plain.on_stage_start(sb.Stage.TRAIN, 1)
    with torch.no_grad():
        plain_loss = plain.compute_objectives(plain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN)
    assert torch.allclose(losses[1], plain_loss) and torch.allclose(losses[2], plain_loss)
    assert losses[3] > plain_loss and torch.allclose(losses[3], losses[4])
