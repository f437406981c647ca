"""Early-exit wav2vec2-CTC on a tiny random wav2vec2 written with
``save_pretrained`` and loaded back through the real loading path
(``hparams/wav2vec2_ctc_tiny.yaml``)."""

import pathlib

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from speechbrain_ee.losses import early_exit_ctc_loss
from speechbrain_ee.nnet import wav2vec2 as w2v
from speechbrain_ee.nnet.lengths import length_mask

TINY_YAML = pathlib.Path(__file__).resolve().parents[2] / "hparams" / "wav2vec2_ctc_tiny.yaml"
STABLE_LN = {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}


def load_tiny(folder, exit_layers=None, config=None):
    """Tiny hparams (and the random checkpoint in ``folder``)."""
    overrides = {"random_wav2vec2_folder": str(folder)}
    if config:
        overrides["wav2vec2_config"] = config
    if exit_layers:
        overrides["arch"] = {"exit_layers": exit_layers}
    with open(TINY_YAML) as handle:
        return load_hyperpyyaml(handle, overrides)


@pytest.fixture(scope="module", params=["post_ln", "stable_ln"])
def tiny(request, tmp_path_factory):
    """Tiny model with an exit after every layer, its source folder and variant."""
    config = STABLE_LN if request.param == "stable_ln" else None
    hparams = load_tiny(tmp_path_factory.mktemp(request.param), list(range(1, 13)), config)
    return hparams["model"].eval(), hparams["wav2vec2_source"], request.param


def batch(lengths=(8000, 5000, 3300)):
    wavs = torch.randn(len(lengths), max(lengths))
    lengths = torch.tensor(lengths)
    return wavs * length_mask(lengths, wavs.shape[1]), lengths


def test_exit_k_equals_hf_hidden_state_k_through_head_k(tiny):
    model, source, variant = tiny
    hf = Wav2Vec2Model.from_pretrained(source).eval()
    wavs, lengths = batch()
    with torch.no_grad():
        log_probs, frames = model(wavs, lengths)
        normalized = w2v.normalize_waveforms(wavs, lengths)
        hf_out = hf(normalized, attention_mask=length_mask(lengths, wavs.shape[1]).long(),
                    output_hidden_states=True)
    assert len(hf_out.hidden_states) == 13 and len(log_probs) == 12
    assert frames.tolist() == hf._get_feat_extract_output_lengths(lengths).tolist()
    for i, layer in enumerate(model.exit_layers):
        hidden = hf_out.hidden_states[layer]
        if variant == "stable_ln":  # un-normalised residual stream: the exit's own LayerNorm
            hidden = model.encoder.exit_norms[i](hidden)
        expected = model.heads(i, hidden)
        for b, n in enumerate(frames.tolist()):
            torch.testing.assert_close(log_probs[i][b, :n], expected[b, :n], atol=1e-5, rtol=1e-4)
    if variant == "stable_ln":  # exit norms start as copies of HF's final norm
        last = model.heads(11, hf_out.last_hidden_state)
        torch.testing.assert_close(log_probs[11][0], last[0], atol=1e-5, rtol=1e-4)


def test_waveform_normalization_matches_hf_feature_extractor():
    wavs, lengths = batch((4000, 2500))
    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    expected = extractor([w[:n].numpy() for w, n in zip(wavs, lengths)], sampling_rate=16000,
                         padding=True, return_tensors="pt").input_values
    torch.testing.assert_close(w2v.normalize_waveforms(wavs, lengths), expected, atol=1e-5, rtol=1e-4)


def test_early_stop_computes_no_layer_above_the_exit(tiny):
    model, _, _ = tiny
    calls = []
    hooks = [layer.register_forward_hook(lambda *_, i=i: calls.append(i))
             for i, layer in enumerate(model.encoder.layers)]
    wavs, lengths = batch()
    with torch.no_grad():
        log_probs, _ = model(wavs, lengths, max_exit=2)
        assert len(log_probs) == 3 and calls == [0, 1, 2]
        calls.clear()
        state = model.start(wavs, lengths)
        state, _ = model.step(state, 1)
        state, _ = model.step(state, 5)
        assert calls == list(range(6)) and state.depth == 6, "each layer once, none above 6"
    for hook in hooks:
        hook.remove()


def test_dropping_finished_utterances_keeps_the_others_outputs(tiny):
    model, _, _ = tiny
    wavs, lengths = batch()
    with torch.no_grad():
        full, frames = model(wavs, lengths, max_exit=3)
        state, _ = model.step(model.start(wavs, lengths), 1)
        state = state.select(torch.tensor([True, False, True]))
        state, out = model.step(state, 3)
    assert state.index.tolist() == [0, 2] and out.shape[1] == frames[0]
    for row, b in enumerate((0, 2)):
        n = int(frames[b])
        torch.testing.assert_close(out[row, :n], full[3][b, :n], atol=1e-5, rtol=1e-4)


def test_layer_norm_cnn_gives_the_same_outputs_alone_and_in_a_batch(tiny):
    model, _, variant = tiny
    if variant != "stable_ln":
        pytest.skip("wav2vec2-base's GroupNorm CNN normalises over the padded batch (as HF)")
    wavs, lengths = batch()
    with torch.no_grad():
        batched, frames = model(wavs, lengths)
        alone, _ = model(wavs[2:, :lengths[2]], lengths[2:])
    for lp_batch, lp_alone in zip(batched, alone):
        torch.testing.assert_close(lp_batch[2, :frames[2]], lp_alone[0], atol=1e-5, rtol=1e-4)


def test_separate_heads_are_separate_parameters(tmp_path):
    model = load_tiny(tmp_path)["model"]
    linears = model.heads.linears
    assert len(linears) == model.num_exits == 6 and not model.heads.shared
    pointers = {p.data_ptr() for lin in linears for p in (lin.weight, lin.bias)}
    assert len(pointers) == 12, "every exit owns its weight and bias"
    wavs, lengths = batch()
    log_probs, _ = model(wavs, lengths, max_exit=1)
    log_probs[0].sum().backward()  # exit 0 only
    assert linears[0].weight.grad is not None and linears[0].weight.grad.abs().sum() > 0
    assert all(lin.weight.grad is None for lin in linears[1:])


def test_frozen_feature_extractor_gets_no_gradient(tmp_path):
    model = load_tiny(tmp_path)["model"].train()
    wav2vec2 = model.encoder.wav2vec2
    assert not wav2vec2.feature_extractor.training, "frozen CNN stays in eval mode"
    wavs, lengths = batch()
    log_probs, frames = model(wavs, lengths)
    targets = torch.randint(0, 31, (3, 5))
    loss, _ = early_exit_ctc_loss(log_probs, frames / frames.max(), targets, torch.ones(3), 31)
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in wav2vec2.feature_extractor.parameters())
    trained = [wav2vec2.feature_projection.projection.weight, model.encoder.layers[0].attention.q_proj.weight,
               model.encoder.layers[11].feed_forward.output_dense.weight]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_layers_above_the_last_exit_are_dropped(tmp_path):
    model = load_tiny(tmp_path, exit_layers=[3, 5])["model"]
    assert len(model.encoder.layers) == 5 and model.exit_layers == [3, 5]


def test_bad_exit_index_is_a_clear_error(tmp_path):
    model = load_tiny(tmp_path)["model"]
    with pytest.raises(ValueError, match="valid indices are 0..5"):
        model.check_exit(6)


def test_missing_local_directory_names_the_path(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(w2v.Wav2Vec2LoadError, match="not found.*no_such_model"):
        w2v.EarlyExitWav2Vec2(str(missing), num_classes=32)


def test_directory_without_config_names_the_path(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(w2v.Wav2Vec2LoadError, match=f"{tmp_path}.*without config.json"):
        w2v.load_wav2vec2(str(tmp_path))


def test_directory_without_weights_names_the_path(tmp_path):
    folder = load_tiny(tmp_path / "src")["wav2vec2_source"]
    (tmp_path / "src" / "model.safetensors").unlink()
    with pytest.raises(w2v.Wav2Vec2LoadError, match=f"local directory '{folder}'"):
        w2v.load_wav2vec2(folder)


def test_unreachable_hub_id_says_it_needs_internet(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(w2v.Wav2Vec2Model, "from_pretrained", offline)
    with pytest.raises(w2v.Wav2Vec2LoadError, match="facebook/wav2vec2-base.*needs internet"):
        w2v.load_wav2vec2("facebook/wav2vec2-base")
