"""Dynamic inference: batch == alone, no layer above an exit, batch compaction."""

import pytest
import torch

from speechbrain_ee.inference import run_dynamic
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.selection import (
    AgreementSelector,
    ConfidenceSelector,
    EntropySelector,
    ExitSelector,
    FixedExitSelector,
    LayerBudgetSelector,
    PatienceSelector,
    mean_frame_entropy,
)

VOCAB = 7  # 6 tokens + blank (last)
LENGTHS = torch.tensor([60, 23, 47, 35, 12])


def tiny_model():
    torch.manual_seed(0)
    enc = EarlyExitConformerEncoder(
        MaskedConvFrontEnd(20, (8, 8)), d_model=32, nhead=4, d_ffn=64,
        num_layers=6, exit_layers=[1, 2, 4, 6], kernel_size=7, dropout=0.0,
    )
    return EarlyExitCTC(enc, ExitHeads(32, VOCAB, 4)).eval()


def batch():
    torch.manual_seed(1)
    return torch.randn(len(LENGTHS), int(LENGTHS.max()), 20), LENGTHS


def greedy_ids(log_probs, lengths):
    """Transcript stand-in: collapsed argmax token ids as a string."""
    texts = []
    for lp, n in zip(log_probs, lengths.tolist()):
        ids = torch.unique_consecutive(lp[:n].argmax(-1)).tolist()
        texts.append(" ".join(str(i) for i in ids if i != VOCAB - 1))
    return texts


def main_token(log_probs, lengths):
    """A coarse transcript (the most frequent argmax token), so that a random
    model's successive exits sometimes agree."""
    return [str(int(lp[:n].argmax(-1).mode().values)) for lp, n in zip(log_probs, lengths.tolist())]


def median_threshold(model, measure):
    """A threshold splitting the batch in two by ``measure`` at exit 0."""
    feats, lens = batch()
    with torch.no_grad():
        log_probs, out_lens = model(feats, lens)
    values = measure(log_probs[0], out_lens).sort().values
    return float((values[2] + values[3]) / 2)


def selectors(model):
    """Each selector, with parameters under which the batch's utterances leave
    at different exits, and the decoder it uses."""
    tokens = [f"▁{i}" for i in range(VOCAB - 1)] + ["<b>"]
    confidence = ConfidenceSelector(0.5, topk=3, vocab_list=tokens, blank_index=VOCAB - 1)
    confidence.threshold = median_threshold(model, lambda lp, n: confidence.measure(lp, n))
    return {
        "entropy": (EntropySelector(median_threshold(model, mean_frame_entropy)), greedy_ids),
        "fixed": (FixedExitSelector(2), greedy_ids),
        "budget": (LayerBudgetSelector(3), greedy_ids),
        "patience": (PatienceSelector(2), main_token),
        "agreement": (AgreementSelector(0.5), greedy_ids),
        "confidence": (confidence, greedy_ids),
    }


@pytest.mark.parametrize("name", ["entropy", "fixed", "budget", "patience", "agreement", "confidence"])
def test_batch_equals_each_utterance_alone(name):
    model = tiny_model()
    selector, decode = selectors(model)[name]
    feats, lens = batch()
    together = run_dynamic(model, feats, lens, selector, decode)
    if name not in ("fixed", "budget"):
        assert len(set(together.exits)) > 1, "the parameters should split the batch"
    for i, n in enumerate(lens.tolist()):
        alone = run_dynamic(model, feats[i : i + 1, :n], lens[i : i + 1], selector, decode)
        assert together.exits[i] == alone.exits[0]
        assert together.layers[i] == alone.layers[0] == model.exit_layers[alone.exits[0]]
        assert together.hypotheses[i] == alone.hypotheses[0]
        assert together.log_probs[i].shape == alone.log_probs[0].shape
        assert torch.allclose(together.log_probs[i], alone.log_probs[0], atol=1e-5)


def test_entropy_selector_mixes_exits_and_matches_its_rule():
    model = tiny_model()
    threshold = median_threshold(model, mean_frame_entropy)
    feats, lens = batch()
    out = run_dynamic(model, feats, lens, EntropySelector(threshold))
    assert len(set(out.exits)) > 1, "the threshold should split the batch"
    with torch.no_grad():
        full, out_lens = model(feats, lens)
    for i, exit_index in enumerate(out.exits):
        entropies = [float(mean_frame_entropy(full[e][i : i + 1], out_lens[i : i + 1])) for e in range(4)]
        below = [e for e in range(3) if entropies[e] < threshold]
        assert exit_index == (below[0] if below else 3)
        assert torch.allclose(out.log_probs[i], full[exit_index][i, : int(out_lens[i])], atol=1e-5)
    assert out.hypotheses is None


def record_calls(model):
    """Batch size seen by every encoder layer and exit head call."""
    layer_calls, head_calls = [], []
    for i, layer in enumerate(model.encoder.layers):
        layer.register_forward_hook(lambda m, args, out, i=i: layer_calls.append((i + 1, args[0].shape[0])))
    model.heads.register_forward_hook(lambda m, args, out: head_calls.append((args[0], args[1].shape[0])))
    return layer_calls, head_calls


@pytest.mark.parametrize("name", ["agreement", "confidence"])
def test_no_layer_above_the_exit_and_compaction(name):
    model = tiny_model()
    selector, decode = selectors(model)[name]
    layer_calls, head_calls = record_calls(model)
    feats, lens = batch()
    out = run_dynamic(model, feats, lens, selector, decode)
    assert len(set(out.exits)) > 2, "the batch should shrink more than once"
    # every layer runs once, on exactly the utterances whose exit is at or above it
    expected = [(layer, sum(l >= layer for l in out.layers)) for layer in range(1, 7)]
    assert layer_calls == [c for c in expected if c[1] > 0]
    assert sum(n for _, n in layer_calls) == sum(out.layers)
    # each exit head runs on the utterances still in the batch there
    exits_reached = [(e, sum(x >= e for x in out.exits)) for e in range(4)]
    assert head_calls == [c for c in exits_reached if c[1] > 0]


def test_fixed_exit_and_budget_skip_lower_heads():
    model = tiny_model()
    layer_calls, head_calls = record_calls(model)
    feats, lens = batch()
    out = run_dynamic(model, feats, lens, LayerBudgetSelector(5))
    assert out.exits == [2] * 5 and out.layers == [4] * 5
    assert [l for l, _ in layer_calls] == [1, 2, 3, 4]
    assert head_calls == [(2, 5)]


def test_transcript_selectors_need_a_decoder():
    model = tiny_model()
    feats, lens = batch()
    with pytest.raises(ValueError, match="decode_fn"):
        run_dynamic(model, feats, lens, PatienceSelector(2))


def test_selector_with_a_wrong_answer_is_reported():
    class Broken(ExitSelector):
        def decide(self, exit_index, measures, index):
            return torch.tensor([True])

    model = tiny_model()
    feats, lens = batch()
    with pytest.raises(ValueError, match="one bool per remaining utterance"):
        run_dynamic(model, feats, lens, Broken())


def test_wav2vec2_model_follows_the_same_protocol(tmp_path):
    """The waveform model (layer-norm feature extractor, which does not see
    the batch padding) gives the same dynamic results in a batch and alone."""
    from speechbrain_ee.nnet.lengths import length_mask
    from speechbrain_ee.nnet.wav2vec2 import EarlyExitWav2Vec2, save_random_wav2vec2

    folder = save_random_wav2vec2(str(tmp_path), dict(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer"))
    torch.manual_seed(0)
    model = EarlyExitWav2Vec2(folder, num_classes=VOCAB, exit_layers=[1, 2, 3, 4]).eval()
    lens = torch.tensor([3000, 1700, 2600, 900, 2200])
    wavs = torch.randn(5, 3000) * length_mask(lens, 3000)
    with torch.no_grad():
        log_probs, out_lens = model(wavs, lens)
    values = mean_frame_entropy(log_probs[0], out_lens).sort().values
    selector = EntropySelector(float((values[2] + values[3]) / 2))
    together = run_dynamic(model, wavs, lens, selector, greedy_ids)
    assert len(set(together.exits)) > 1
    for i, n in enumerate(lens.tolist()):
        alone = run_dynamic(model, wavs[i : i + 1, :n], lens[i : i + 1], selector, greedy_ids)
        assert (alone.exits[0], alone.hypotheses[0]) == (together.exits[i], together.hypotheses[i])
        assert torch.allclose(alone.log_probs[0], together.log_probs[i], atol=1e-4)
