"""Smoke test of benchmarks/train_step.py (a few seconds)."""

import importlib.util
import json
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_step", REPO_ROOT / "benchmarks" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_consistent_json(tmp_path):
    out = tmp_path / "step.json"
    result = load_benchmark().main(["--reps", "2", "--warmup", "0", "--seconds", "1", "--batch", "2",
                                    "--json-out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["dropout_modules"] > 0
    medians = result["median_ms"]
    assert medians["fast_dropout"] > 0 and medians["torch_dropout"] > 0
    assert result["fast_vs_torch"] > 0
    low, high = result["fast_vs_torch_quartiles"]
    assert low <= result["fast_vs_torch"] <= high


def test_bad_batch_is_refused():
    with pytest.raises(SystemExit):
        load_benchmark().main(["--batch", "0"])
