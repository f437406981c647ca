import pytest
import torch

from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd


def tiny_model(exit_layers=(1, 2, 3, 4), num_layers=4, shared=False, self_condition=False):
    enc = EarlyExitConformerEncoder(
        MaskedConvFrontEnd(20, (8, 8)), d_model=32, nhead=4, d_ffn=64,
        num_layers=num_layers, exit_layers=list(exit_layers), kernel_size=7,
    )
    heads = ExitHeads(32, 11, len(exit_layers), shared=shared)
    return EarlyExitCTC(enc, heads, self_condition=self_condition).eval()


both_kinds = pytest.mark.parametrize("self_condition", [False, True], ids=["plain", "self_conditioned"])


def count_layer_calls(model):
    calls = []
    for i, layer in enumerate(model.encoder.layers):
        layer.register_forward_hook(lambda mod, inp, out, i=i: calls.append(i))
    return calls


def test_exit_shapes():
    model = tiny_model()
    log_probs, lens = model(torch.randn(3, 50, 20), torch.tensor([50, 33, 9]))
    assert len(log_probs) == 4
    for lp in log_probs:
        assert lp.shape == (3, 13, 11)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 13), atol=1e-5)
    assert lens.tolist() == [13, 9, 3]


@both_kinds
def test_only_needed_layers_run(self_condition):
    model = tiny_model(exit_layers=(2, 4), num_layers=4, self_condition=self_condition)
    calls = count_layer_calls(model)
    model(torch.randn(2, 40, 20), torch.tensor([40, 20]), max_exit=0)
    assert calls == [0, 1]
    calls.clear()
    state = model.start(torch.randn(2, 40, 20), torch.tensor([40, 20]))
    state, _ = model.step(state, 0)
    state, _ = model.step(state, 1)
    assert calls == [0, 1, 2, 3], "each layer computed exactly once"
    assert state.depth == 4


@both_kinds
def test_exit_norm_computed_once_per_exit(self_condition):
    model = tiny_model(exit_layers=(2, 4), num_layers=4, self_condition=self_condition)
    norm_calls = []
    for i, norm in enumerate(model.encoder.exit_norms):
        norm.register_forward_hook(lambda mod, inp, out, i=i: norm_calls.append(i))
    state = model.start(torch.randn(3, 40, 20), torch.tensor([40, 20, 30]))
    state, _ = model.step(state, 0)
    again = model.encoder.advance(state, 0)[1]  # a second reader of exit 0 (decoder, selector)
    assert norm_calls == [0] and again is state.exit_output
    kept = state.select(torch.tensor([True, False, True]))
    assert torch.equal(model.encoder.advance(kept, 0)[1], again[[0, 2]])
    assert norm_calls == [0]
    state, _ = model.step(kept, 1)
    assert norm_calls == [0, 1]


def test_layers_above_last_exit_are_not_built():
    model = tiny_model(exit_layers=(1, 3), num_layers=12)
    assert len(model.encoder.layers) == 3


@both_kinds
def test_incremental_equals_full_forward(self_condition):
    model = tiny_model(self_condition=self_condition)
    feats, lens = torch.randn(2, 45, 20), torch.tensor([45, 30])
    full, _ = model(feats, lens)
    state = model.start(feats, lens)
    for i in range(4):
        state, lp = model.step(state, i)
        assert torch.allclose(lp, full[i], atol=1e-6)


@both_kinds
def test_padding_does_not_change_shorter_utterance(self_condition):
    model = tiny_model(self_condition=self_condition)
    feats = torch.randn(2, 61, 20)
    batch_lp, batch_lens = model(feats, torch.tensor([61, 37]))
    alone_lp, alone_lens = model(feats[1:, :37], torch.tensor([37]))
    n = int(alone_lens[0])
    assert int(batch_lens[1]) == n
    for b, a in zip(batch_lp, alone_lp):
        assert torch.allclose(b[1, :n], a[0], atol=1e-5)


@both_kinds
def test_batch_compaction_keeps_results(self_condition):
    model = tiny_model(self_condition=self_condition)
    feats, lens = torch.randn(3, 50, 20), torch.tensor([50, 30, 45])
    full, _ = model(feats, lens)
    state = model.start(feats, lens)
    state, _ = model.step(state, 0)
    state = state.select(torch.tensor([False, True, True]))
    assert state.index.tolist() == [1, 2]
    assert state.hidden.shape[1] == int(state.lengths.max())
    state, lp = model.step(state, 2)
    for row, utt in enumerate(state.index.tolist()):
        n = int(state.lengths[row])
        assert torch.allclose(lp[row, :n], full[2][utt, :n], atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 4, 1.5, "2"])
def test_bad_exit_index(bad):
    model = tiny_model()
    with pytest.raises(ValueError, match="not an exit"):
        model(torch.randn(1, 20, 20), torch.tensor([20]), max_exit=bad)


@pytest.mark.parametrize("exits", [[], [2, 2], [4, 2], [0, 2], [2, 13]])
def test_bad_exit_layers(exits):
    with pytest.raises(ValueError, match="exit_layers"):
        EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (8,)), d_model=16, nhead=2,
                                  d_ffn=32, num_layers=12, exit_layers=exits)


def test_shared_and_separate_heads():
    separate = tiny_model(shared=False)
    shared = tiny_model(shared=True)
    assert len(separate.heads.linears) == 4
    assert len(shared.heads.linears) == 1
    with pytest.raises(ValueError, match="exit heads"):
        EarlyExitCTC(separate.encoder, ExitHeads(32, 11, 3))


def test_self_conditioning_feeds_exits_to_the_layers_above():
    torch.manual_seed(0)
    plain = tiny_model(exit_layers=(2, 4))
    conditioned = tiny_model(exit_layers=(2, 4), self_condition=True)
    conditioned.load_state_dict(plain.state_dict(), strict=False)  # same layers and heads
    feats, lens = torch.randn(2, 40, 20), torch.tensor([40, 28])
    (first_p, top_p), _ = plain(feats, lens)
    (first_c, top_c), _ = conditioned(feats, lens)
    assert torch.allclose(first_p, first_c), "below the first exit nothing is conditioned"
    assert not torch.allclose(top_p, top_c, atol=1e-3)
    conditioned.train()
    log_probs, _ = conditioned(feats, lens)
    log_probs[1].sum().backward()
    assert conditioned.conditioning.weight.grad.abs().sum() > 0
    assert conditioned.heads.linears[0].weight.grad.abs().sum() > 0, "the top exit trains the first head"
    assert conditioned.heads.linears[1].weight.grad is not None


def test_self_conditioned_step_refuses_going_down():
    model = tiny_model(self_condition=True)
    state, _ = model.step(model.start(torch.randn(1, 40, 20), torch.tensor([40])), 2)
    with pytest.raises(ValueError, match="below the current depth"):
        model.step(state, 1)
