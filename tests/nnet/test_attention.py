"""FastRelPosMHAXL is a drop-in for SpeechBrain's RelPosMHAXL."""

import copy

import pytest
import torch
from speechbrain.nnet.attention import RelPosEncXL, RelPosMHAXL

from speechbrain_ee.nnet import EarlyExitConformerEncoder, MaskedConvFrontEnd
from speechbrain_ee.nnet.attention import (
    FastRelPosMHAXL,
    PositionTables,
    rel_shift_reshape,
    rel_shift_view,
)

ATOL = 1e-5


def attention_pair(embed_dim=32, num_heads=4, block_rows=4, **kwargs):
    """A fast attention (small row blocks, so several blocks run) and
    SpeechBrain's with the same weights (biases made non-zero)."""
    fast = FastRelPosMHAXL(embed_dim, num_heads, **kwargs)
    fast.block_rows = block_rows
    with torch.no_grad():
        fast.out_proj.bias.normal_()
        if fast.vbias is not None:
            fast.value_bias_weight.normal_()
    slow = RelPosMHAXL(embed_dim, num_heads, **kwargs)
    slow.load_state_dict(fast.state_dict())
    return fast.eval(), slow.eval()


def inputs(batch=3, time=11, dim=32, lengths=(11, 7, 2)):
    x = torch.randn(batch, time, dim)
    padding = torch.arange(time)[None, :] >= torch.tensor(lengths)[:, None]
    return x, RelPosEncXL(dim)(x), padding


@pytest.mark.parametrize("time", [1, 2, 9, 16])
def test_rel_shift_view_equals_speechbrain_rel_shift(time):
    scores = torch.randn(2, 3, time, 2 * time - 1)
    expected = RelPosMHAXL(8, 2).rel_shift(scores)
    assert torch.equal(rel_shift_view(scores), expected)
    with pytest.raises(ValueError, match="expected"):
        rel_shift_view(scores[..., 1:])


def test_same_parameters_and_state_dict_keys():
    fast, slow = attention_pair()
    assert list(fast.state_dict()) == list(slow.state_dict())
    assert [p.shape for p in fast.parameters()] == [p.shape for p in slow.parameters()]
    slow.load_state_dict(FastRelPosMHAXL(32, 4).state_dict(), strict=True)


@pytest.mark.parametrize("vbias", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_output_equals_speechbrain_with_padding(vbias, grad):
    fast, slow = attention_pair(vbias=vbias)
    x, pos, padding = inputs()
    with torch.set_grad_enabled(grad):
        out, weights = fast(x, x, x, pos, key_padding_mask=padding)
        expected, _ = slow(x, x, x, pos, key_padding_mask=padding)
    assert weights is None
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
    assert fast(x, x, x, pos, return_attn_weights=False).shape == x.shape


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_attn_mask_equals_speechbrain(kind):
    fast, slow = attention_pair()
    x, pos, padding = inputs()
    attn_mask = torch.rand(11, 11) > 0.7 if kind == "bool" else torch.randn(11, 11)
    attn_mask.fill_diagonal_(False if kind == "bool" else 0.0)
    with torch.no_grad():
        out = fast(x, x, x, pos, key_padding_mask=padding, attn_mask=attn_mask)[0]
        expected = slow(x, x, x, pos, key_padding_mask=padding, attn_mask=attn_mask)[0]
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_gradients_equal_speechbrain():
    fast, slow = attention_pair()
    fast.train(), slow.train()  # dropout is 0: deterministic
    x, pos, padding = inputs()
    grads = []
    for module in (fast, slow):
        x_in = x.clone().requires_grad_()
        out = module(x_in, x_in, x_in, pos, key_padding_mask=padding)[0]
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([x_in.grad] + [p.grad for p in module.parameters()])
    for got, expected in zip(*grads):
        assert got is not None and got.abs().sum() > 0
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_position_cache_follows_weights_and_embeddings():
    fast, slow = attention_pair()
    x, pos, padding = inputs()
    with torch.no_grad():
        fast(x, x, x, pos)  # fills the cache
        short = x[:, :5]  # reuses the centre of the cached table
        torch.testing.assert_close(fast(short, short, short, RelPosEncXL(32)(short))[0],
                                   slow(short, short, short, RelPosEncXL(32)(short))[0], atol=ATOL, rtol=0)
        other_pos = torch.randn_like(pos)  # other embeddings: recomputed
        torch.testing.assert_close(fast(x, x, x, other_pos)[0], slow(x, x, x, other_pos)[0],
                                   atol=ATOL, rtol=0)
        for module in (fast, slow):  # weights updated in place: recomputed
            module.linear_pos.weight.mul_(-2.0)
        torch.testing.assert_close(fast(x, x, x, pos)[0], slow(x, x, x, pos)[0], atol=ATOL, rtol=0)
        new_weights = RelPosMHAXL(32, 4).state_dict()
        fast.load_state_dict(new_weights), slow.load_state_dict(new_weights)
        torch.testing.assert_close(fast(x, x, x, pos)[0], slow(x, x, x, pos)[0], atol=ATOL, rtol=0)


def test_fallbacks_run_speechbrain_code():
    fast, slow = attention_pair()
    x, pos, padding = inputs()
    memory = torch.randn_like(x)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, memory, memory, pos)[0], slow(x, memory, memory, pos)[0])
        fast.need_weights = True
        out, weights = fast(x, x, x, pos, key_padding_mask=padding)
        expected, expected_weights = slow(x, x, x, pos, key_padding_mask=padding)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(weights, expected_weights)


def test_from_relpos_shares_weights_and_draws_no_random_number():
    slow = RelPosMHAXL(32, 4)
    state = torch.get_rng_state()
    fast = FastRelPosMHAXL.from_relpos(slow)
    assert torch.equal(torch.get_rng_state(), state)
    for name, tensor in slow.state_dict().items():
        assert fast.state_dict()[name].data_ptr() == tensor.data_ptr(), name


def tiny_encoder():
    return EarlyExitConformerEncoder(MaskedConvFrontEnd(20, (8, 8)), d_model=32, nhead=4,
                                     d_ffn=64, num_layers=3, exit_layers=[1, 3], kernel_size=7).eval()


def with_speechbrain_attention(encoder):
    """Copy of ``encoder`` whose layers use SpeechBrain's RelPosMHAXL."""
    reference = copy.deepcopy(encoder)
    for layer in reference.layers:
        assert isinstance(layer.mha_layer, FastRelPosMHAXL)
        slow = RelPosMHAXL(32, 4)
        slow.load_state_dict(layer.mha_layer.state_dict())
        layer.mha_layer = slow.eval()
    return reference


def test_encoder_output_unchanged_and_checkpoints_load():
    encoder = tiny_encoder()
    reference = with_speechbrain_attention(encoder)
    feats, lengths = torch.randn(3, 50, 20), torch.tensor([50, 31, 9])
    with torch.no_grad():
        outs, out_lens = encoder(feats, lengths)
        expected, expected_lens = reference(feats, lengths)
    assert torch.equal(out_lens, expected_lens)
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    # a checkpoint of the SpeechBrain-attention model loads strictly and unchanged
    fresh = tiny_encoder()
    fresh.load_state_dict(reference.state_dict(), strict=True)
    assert list(fresh.state_dict()) == list(reference.state_dict())


def test_positional_embeddings_computed_once_per_run():
    encoder = tiny_encoder()
    calls = []
    encoder.positional_encoding.register_forward_hook(lambda *args: calls.append(1))
    feats, lengths = torch.randn(2, 50, 20), torch.tensor([50, 20])
    with torch.no_grad():
        state = encoder.start(feats, lengths)
        state, first = encoder.advance(state, 0)
        state, second = encoder.advance(state, 1)
        assert len(calls) == 1
        trimmed = state.select(torch.tensor([False, True]))  # shorter: recomputed
        assert trimmed.pos_embs is None
        outs, _ = encoder(feats, lengths)
    torch.testing.assert_close(second, outs[1], atol=ATOL, rtol=0)


def test_position_tables_check_values_once_and_follow_in_place_changes():
    tables = PositionTables()
    pos = torch.randn(1, 9, 4)
    table, offset = tables.lookup(pos)
    assert tables.lookup(pos) == (table, offset)  # same tensor: recognised
    assert tables.lookup(pos.clone())[0] is table  # equal values: same table
    assert tables.lookup(pos[:, 2:7].clone()) == (table, 2)  # centre of it
    pos.mul_(2.0)  # changed in place: compared again, new table
    new_table, _ = tables.lookup(pos)
    assert new_table is not table and torch.equal(new_table, pos)


@pytest.mark.parametrize("rows, klen", [(1, 1), (1, 7), (2, 2), (5, 11), (16, 16), (64, 250)])
def test_rel_shift_reshape_equals_strided_view_without_copy(rows, klen):
    scores = torch.randn(2, 3, rows, klen + rows - 1)
    shifted = rel_shift_reshape(scores, klen)
    assert torch.equal(shifted, rel_shift_view(scores, klen))
    if rows > 1:  # a view of the scores: no copy
        assert shifted.untyped_storage().data_ptr() == scores.untyped_storage().data_ptr()
    padded = torch.nn.functional.pad(scores, (0, 1))  # scores computed with a zero key column
    assert torch.equal(rel_shift_reshape(padded, klen, padded=True), shifted)
    with pytest.raises(ValueError, match="expected"):
        rel_shift_reshape(scores[..., 1:], klen)


def test_rel_shift_reshape_onnx_export_any_length(tmp_path):
    """The shift exports (no as_strided) and the graph holds for other lengths."""
    ort = pytest.importorskip("onnxruntime")

    class Shift(torch.nn.Module):
        def forward(self, scores):
            return rel_shift_reshape(scores, scores.shape[-2])

    path = str(tmp_path / "shift.onnx")
    torch.onnx.export(Shift(), (torch.randn(1, 2, 6, 11),), path, input_names=["s"], output_names=["o"],
                      dynamic_axes={"s": {2: "n", 3: "w"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for rows in (1, 2, 9):
        scores = torch.randn(1, 2, rows, 2 * rows - 1)
        (out,) = session.run(None, {"s": scores.numpy()})
        assert torch.equal(torch.from_numpy(out), rel_shift_view(scores))


def test_onnx_export_of_attention_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    fast, _ = attention_pair(block_rows=64)

    class SelfAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = fast

        def forward(self, x, pos):
            return self.mha(x, x, x, pos)[0]

    x, pos, _ = inputs(batch=1, time=11, lengths=(11,))
    path = str(tmp_path / "mha.onnx")
    with torch.no_grad():
        torch.onnx.export(SelfAttention(), (x, pos), path, input_names=["x", "pos"], output_names=["y"],
                          dynamic_axes={"x": {1: "t"}, "pos": {1: "p"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for time in (3, 11, 30):  # other lengths than the traced one
        x = torch.randn(1, time, 32)
        pos = RelPosEncXL(32)(x)
        with torch.no_grad():
            expected = fast(x, x, x, pos)[0]
        (out,) = session.run(None, {"x": x.numpy(), "pos": pos.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), expected, atol=ATOL, rtol=0)


def test_position_cache_works_with_quantized_linears():
    """torch.ao dynamic quantization turns linear_pos.weight into a method;
    the cache then follows the packed parameters."""
    fast, _ = attention_pair()
    x, pos, padding = inputs()
    quantized = torch.ao.quantization.quantize_dynamic(
        torch.nn.ModuleDict({"mha": fast}), {torch.nn.Linear}, torch.qint8)["mha"]
    assert callable(quantized.linear_pos.weight)
    with torch.no_grad():
        expected = fast(x, x, x, pos, key_padding_mask=padding)[0]
        first = quantized(x, x, x, pos, key_padding_mask=padding)[0]
        again = quantized(x, x, x, pos, key_padding_mask=padding)[0]  # from the cache
        torch.testing.assert_close(first, expected, atol=0.05, rtol=0.05)
        assert torch.equal(first, again)
        packed = quantized.linear_pos._packed_params
        packed.set_weight_bias(torch.quantize_per_tensor(
            -quantized.linear_pos.weight().dequantize(), 0.01, 0, torch.qint8), None)
        flipped = quantized(x, x, x, pos, key_padding_mask=padding)[0]  # new weights: recomputed
    assert not torch.allclose(flipped, first)
