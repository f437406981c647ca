"""Warm start (``init_from``): a model's encoder, CTC heads and input
statistics from a trained early-exit model."""

import os

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.checkpoints import load_model_dir
from speechbrain_ee.testing import TINY_ARCH, train_tokenizer, write_random_model_dir
from speechbrain_ee.warm_start import warm_start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTC_YAML = os.path.join(ROOT, "hparams", "conformer_ctc_small.yaml")
AED_YAML = os.path.join(ROOT, "hparams", "conformer_aed_small.yaml")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A random 4-exit CTC model directory (exits after layers 1..4)."""
    return write_random_model_dir(str(tmp_path_factory.mktemp("src")), CTC_YAML, seed=1)


def build(yaml_file, seed, output_neurons, **arch):
    torch.manual_seed(seed)
    with open(yaml_file) as handle:
        return load_hyperpyyaml(handle, {**TINY_ARCH, **arch, "output_neurons": output_neurons})


def same(a, b):
    return torch.equal(a.float(), b.float())


def test_warm_start_same_architecture_copies_everything(source):
    src = load_model_dir(source)
    fresh = build(CTC_YAML, seed=7, output_neurons=src["model"].heads.linears[0].out_features)
    before = {k: v.clone() for k, v in fresh["model"].state_dict().items()}
    report = warm_start(fresh["model"], source, normalize=fresh["normalize"], tokenizer=src["tokenizer"])
    assert report.kept == [] and report.normalize and report.unmatched_pieces == []
    source_state = src["model"].state_dict()
    for key, value in fresh["model"].state_dict().items():
        assert same(value, source_state[key]), key
    assert any(not same(before[k], source_state[k]) for k in before)  # it did change something
    assert torch.allclose(fresh["normalize"].glob_mean, src["normalize"].glob_mean)


def test_warm_start_single_exit_takes_the_exit_of_its_layer(source):
    src = load_model_dir(source)
    classes = src["model"].heads.linears[0].out_features
    fresh = build(CTC_YAML, seed=3, output_neurons=classes, num_layers=3, exit_layers=[3])
    warm_start(fresh["model"], source, parts=("encoder", "ctc_heads"), tokenizer=src["tokenizer"])
    got, want = fresh["model"].state_dict(), src["model"].state_dict()
    assert same(got["encoder.exit_norms.0.weight"], want["encoder.exit_norms.2.weight"])
    assert same(got["heads.linears.0.weight"], want["heads.linears.2.weight"])
    assert same(got["encoder.layers.2.norm1.norm.weight"], want["encoder.layers.2.norm1.norm.weight"])


def test_warm_start_aed_from_ctc_matches_head_rows_by_piece(source, tmp_path):
    src = load_model_dir(source)
    aed_tokenizer, vocab = train_tokenizer(
        ["HELLO WORLD", "THE QUICK BROWN FOX", "YES NO STOP GO"], str(tmp_path), bos_eos=True)
    fresh = build(AED_YAML, seed=5, output_neurons=vocab + 1)
    decoder_before = {k: v.clone() for k, v in fresh["model"].state_dict().items() if k.startswith("decoders.")}
    head_before = fresh["model"].heads.linears[0].weight.detach().clone()
    report = warm_start(fresh["model"], source, parts=("encoder", "ctc_heads"), tokenizer=aed_tokenizer)
    assert "<s>" in report.unmatched_pieces and "</s>" in report.unmatched_pieces
    got, want = fresh["model"].state_dict(), src["model"].state_dict()
    for key in want:
        if key.startswith("encoder.") and key in got:
            assert same(got[key], want[key]), key
    src_tok = src["tokenizer"]
    head = got["heads.linears.1.weight"]
    for t in range(vocab):
        piece = aed_tokenizer.id_to_piece(t)
        s = src_tok.piece_to_id(piece)
        if src_tok.id_to_piece(s) == piece:
            assert same(head[t], want["heads.linears.1.weight"][s]), piece
        else:
            assert same(fresh["model"].heads.linears[0].weight[t], head_before[t]), piece  # kept at init
    assert same(head[vocab], want["heads.linears.1.weight"][-1])  # blank to blank
    for key, value in decoder_before.items():
        assert same(got[key], value), key  # decoders untouched


def test_warm_start_rejects_another_d_model(source):
    src = load_model_dir(source)
    fresh = build(CTC_YAML, seed=2, output_neurons=src["model"].heads.linears[0].out_features, d_model=24)
    with pytest.raises(ValueError, match="init_from: .* here"):
        warm_start(fresh["model"], source, parts=("encoder",))


def test_warm_start_errors_name_the_option(source, tmp_path):
    fresh = build(CTC_YAML, seed=2, output_neurons=10)
    with pytest.raises(FileNotFoundError, match="init_from: no model.ckpt"):
        warm_start(fresh["model"], str(tmp_path))
    with pytest.raises(ValueError, match="init_parts: unknown"):
        warm_start(fresh["model"], source, parts=("encoder", "decoder"))
    with pytest.raises(ValueError, match="give both tokenizers"):
        warm_start(fresh["model"], source, parts=("ctc_heads",))


def test_warm_start_from_a_checkpoint_directory(source, tmp_path):
    """A SpeechBrain CKPT directory (no hyperparams, no checksums): exits as
    the model's when the count agrees."""
    src = load_model_dir(source)
    ckpt = tmp_path / "CKPT+x"
    ckpt.mkdir()
    torch.save(src["model"].state_dict(), ckpt / "model.ckpt")
    fresh = build(CTC_YAML, seed=9, output_neurons=src["model"].heads.linears[0].out_features)
    report = warm_start(fresh["model"], str(ckpt), parts=("encoder", "ctc_heads"))
    assert report.kept == []
    assert same(fresh["model"].heads.linears[3].bias, src["model"].heads.linears[3].bias)
    two = build(CTC_YAML, seed=9, output_neurons=10, num_layers=2, exit_layers=[2])
    with pytest.raises(ValueError, match="source_exit_layers"):
        warm_start(two["model"], str(ckpt), parts=("encoder",))


def test_warm_start_aed_from_a_recipe_checkpoint_finds_its_tokenizer(source, tmp_path):
    """A recipe's ``<save>/CKPT+...`` has no tokenizer.model: the one
    ``<save>/tokenizer/*.model`` matches the head rows; two are ambiguous."""
    src = load_model_dir(source)
    ckpt = tmp_path / "save" / "CKPT+x"
    ckpt.mkdir(parents=True)
    torch.save(src["model"].state_dict(), ckpt / "model.ckpt")
    aed_tokenizer, vocab = train_tokenizer(
        ["HELLO WORLD", "THE QUICK BROWN FOX", "YES NO STOP GO"], str(tmp_path / "aed"), bos_eos=True)
    fresh = build(AED_YAML, seed=5, output_neurons=vocab + 1)
    with pytest.raises(ValueError, match="give both tokenizers"):  # no source tokenizer anywhere
        warm_start(fresh["model"], str(ckpt), parts=("ctc_heads",), tokenizer=aed_tokenizer)
    (tmp_path / "save" / "tokenizer").mkdir()
    src_file = os.path.join(source, "tokenizer.model")
    with open(src_file, "rb") as handle:
        (tmp_path / "save" / "tokenizer" / "29_char.model").write_bytes(handle.read())
    report = warm_start(fresh["model"], str(ckpt), parts=("ctc_heads",), tokenizer=aed_tokenizer)
    assert {"<s>", "</s>"} <= set(report.unmatched_pieces)
    assert same(fresh["model"].heads.linears[0].weight[vocab], src["model"].heads.linears[0].weight[-1])
    (tmp_path / "save" / "tokenizer" / "other.model").write_bytes(b"")
    with pytest.raises(ValueError, match="several tokenizers .* init_tokenizer"):
        warm_start(fresh["model"], str(ckpt), parts=("ctc_heads",), tokenizer=aed_tokenizer)
    with pytest.raises(FileNotFoundError, match="init_tokenizer: source tokenizer /no/file not found"):
        warm_start(fresh["model"], str(ckpt), parts=("ctc_heads",), tokenizer=aed_tokenizer,
                   source_tokenizer="/no/file")


def test_start_up_check_names_a_missing_init_tokenizer(source):
    from speechbrain_ee.training_checks import check_warm_start

    check_warm_start({"init_from": source, "init_tokenizer": os.path.join(source, "tokenizer.model")})
    with pytest.raises(ValueError, match="init_tokenizer: source tokenizer /no/file not found"):
        check_warm_start({"init_from": source, "init_tokenizer": "/no/file"})
