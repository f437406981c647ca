"""The LibriSpeech recipes (Conformer-CTC, Conformer-AED, wav2vec2) end to end
for a couple of batches on the real subsets (train-clean-5 speakers,
dev-clean-2 as dev and test)."""

from corpus_recipe import check_run, run_recipe

SUBSETS = ["--train_splits=[train-clean-5]", "--dev_splits=[dev-clean-2]", "--test_splits=[dev-clean-2]",
           "--test_csv=[!ref <manifest_folder>/dev-clean-2.csv]", "--max_duration=15.0"]


def test_librispeech_conformer_ctc_recipe(librispeech_dir, tmp_path, monkeypatch):
    brain, out, model = run_recipe("LibriSpeech", "conformer_ee.yaml", librispeech_dir, tmp_path,
                                   monkeypatch, *SUBSETS)
    report = check_run(brain, out, model, tmp_path, test_set="dev-clean-2")
    kept = report["splits"]["train"]["utterances"]
    assert kept < 96 and report["splits"]["train"]["skipped"] == {"longer than max_duration": 96 - kept}
    assert brain.hparams.tokenizer.get_piece_size() == 40 and brain.test_decoder.rescorer.weights["transformerlm"] == 0.3
    assert (model / "lm.ckpt").is_file()


def test_librispeech_conformer_aed_recipe(librispeech_dir, tmp_path, monkeypatch):
    brain, out, model = run_recipe("LibriSpeech", "conformer_aed_ee.yaml", librispeech_dir, tmp_path,
                                   monkeypatch, *SUBSETS)
    check_run(brain, out, model, tmp_path, test_set="dev-clean-2")
    assert "aed_decoding: rescoring" in (model / "hyperparams.yaml").read_text()


def test_librispeech_wav2vec2_recipe(librispeech_dir, tmp_path, monkeypatch):
    from test_an4_wav2vec2_recipe import tiny_wav2vec2

    source = tiny_wav2vec2(tmp_path / "wav2vec2")
    brain, out, model = run_recipe("LibriSpeech", "wav2vec2_ee.yaml", librispeech_dir, tmp_path, monkeypatch,
                                   *SUBSETS, f"--wav2vec2_source={source}")
    check_run(brain, out, model, tmp_path, test_set="dev-clean-2")
    assert brain.hparams.output_neurons == 32  # the 32 graphemes (blank included)


def test_librispeech_no_ee_baseline(librispeech_dir, tmp_path, monkeypatch):
    brain, out, model = run_recipe("LibriSpeech", "conformer_ee.yaml", librispeech_dir, tmp_path, monkeypatch,
                                   *SUBSETS, "--num_layers=2", "--exit_layers=[2]", "--lm_weight=0.0")
    check_run(brain, out, model, tmp_path, test_set="dev-clean-2")
    assert len(brain.hparams.model.encoder.layers) == 2 and list(brain.hparams.model.exit_layers) == [2]
