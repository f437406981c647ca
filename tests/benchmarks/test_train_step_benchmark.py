"""Smoke test of benchmarks/train_step.py (a few seconds)."""

import json

import pytest


def test_benchmark_writes_consistent_json(tmp_path, load_benchmark):
    out = tmp_path / "step.json"
    result = load_benchmark("train_step").main(["--reps", "2", "--warmup", "0", "--seconds", "1",
                                                "--batch", "2", "--json-out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["dropout_modules"] > 0
    medians = result["median_ms"]
    assert medians["fast_dropout"] > 0 and medians["torch_dropout"] > 0
    assert result["fast_vs_torch"] > 0
    low, high = result["fast_vs_torch_quartiles"]
    assert low <= result["fast_vs_torch"] <= high


def test_bad_batch_is_refused(load_benchmark):
    with pytest.raises(SystemExit):
        load_benchmark("train_step").main(["--batch", "0"])
