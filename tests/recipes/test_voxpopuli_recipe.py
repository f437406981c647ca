"""The VoxPopuli recipes end to end for a couple of batches on a corpus of
real speech in the layout of the official get_asr_data (TSV + Ogg clips)."""

from corpus_recipe import check_run, run_recipe


def test_voxpopuli_conformer_ctc_recipe(voxpopuli_corpus, tmp_path, monkeypatch):
    root, expected, awkward = voxpopuli_corpus
    brain, out, model = run_recipe("VoxPopuli", "conformer_ee.yaml", root, tmp_path, monkeypatch,
                                   "--vocab_size=30")
    report = check_run(brain, out, model, tmp_path)
    for split, planted in expected.items():
        assert report["splits"][split]["utterances"] == len(planted)
        assert sum(report["splits"][split]["skipped"].values()) == awkward


def test_voxpopuli_conformer_aed_recipe(voxpopuli_corpus, tmp_path, monkeypatch):
    root, _, _ = voxpopuli_corpus
    brain, out, model = run_recipe("VoxPopuli", "conformer_aed_ee.yaml", root, tmp_path, monkeypatch,
                                   "--vocab_size=32")
    check_run(brain, out, model, tmp_path)
