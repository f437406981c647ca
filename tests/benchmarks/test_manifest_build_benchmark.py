"""Smoke test of benchmarks/manifest_build.py (the LibriSpeech 960 h manifest
build) on a 300-utterance tree."""

import csv
import json


def test_librispeech_manifest_benchmark_small_tree(tmp_path, load_benchmark):
    bench = load_benchmark("manifest_build")
    sizes = bench.split_sizes(300)
    assert sum(sizes.values()) == 300 and list(sizes) == list(bench.SPLITS_960)
    built = bench.build_tree(str(tmp_path / "tree"), sizes, extra_size=5)
    assert built == 310
    rows = list(csv.reader(open(next((tmp_path / "tree" / "dev-clean").rglob("*.trans.txt"))), delimiter=" "))
    assert len(rows) == 5

    out = tmp_path / "bench.json"
    result = bench.main(["--utterances", "300", "--workdir", str(tmp_path / "work"), "--json-out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["ours"]["train_rows"] == 300  # every synthetic utterance reached the manifest
    assert 0 < result["ours"]["peak_rss_after_imports_mb"] <= result["ours"]["peak_rss_mb"]
    assert result["met"] == (result["ours"]["wall_s"] < 120 and result["ours"]["peak_rss_mb"] < 1024)
    assert not (tmp_path / "work").exists()  # the scratch tree is removed
