"""The TED-LIUM 3 recipes end to end for a couple of batches on a legacy-layout
corpus of real speech (segments of NIST SPHERE talks read by offset)."""

from corpus_recipe import check_run, run_recipe


def test_tedlium_conformer_ctc_recipe(tedlium_corpus, tmp_path, monkeypatch):
    root, expected, awkward = tedlium_corpus
    brain, out, model = run_recipe("TEDLIUM3", "conformer_ee.yaml", root, tmp_path, monkeypatch,
                                   "--vocab_size=30")
    report = check_run(brain, out, model, tmp_path)
    assert report["splits"]["test"]["utterances"] == len(expected["test"])
    assert report["splits"]["train"]["skipped"]["segment outside the audio"] == 2  # one per training talk


def test_tedlium_conformer_aed_recipe(tedlium_corpus, tmp_path, monkeypatch):
    root, _, _ = tedlium_corpus
    brain, out, model = run_recipe("TEDLIUM3", "conformer_aed_ee.yaml", root, tmp_path, monkeypatch,
                                   "--vocab_size=30", "--unk=skip")
    report = check_run(brain, out, model, tmp_path)
    assert report["splits"]["dev"]["skipped"]["<unk> in the transcript"] == 1
