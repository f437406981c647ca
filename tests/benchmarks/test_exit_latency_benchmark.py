"""Smoke test of benchmarks/exit_latency.py on the small Conformer (seconds)."""

import json
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_benchmark_writes_consistent_json(tmp_path, load_benchmark):
    out = tmp_path / "latency.json"
    result = load_benchmark("exit_latency").main([
        "--hparams", str(REPO_ROOT / "hparams" / "conformer_ctc_small.yaml"), "--output-neurons", "31",
        "--reps", "2", "--warmup", "0", "--seconds", "1.5", "--json-out", str(out),
    ])
    assert json.loads(out.read_text()) == result
    medians = result["median_ms_by_exit"]
    assert len(result["ratio_by_exit"]) == len(result["exit_layers"]) == len(medians) == 6
    assert result["ratio_by_exit"][-1] == 1.0
    assert result["ratio_by_exit"][0] == pytest.approx(medians[0] / medians[-1], abs=1e-3)
    dynamic = result["dynamic"]
    assert dynamic["exit"] == 2, "the sharpened heads make the middle exit reachable"
    assert result["dynamic_overhead"] == pytest.approx(
        dynamic["median_ms_dynamic"] / dynamic["median_ms_fixed_exit"], abs=1e-2)
    assert dynamic["median_ms_selection_work"] > 0 and dynamic["overhead_paired"] > 0
    assert dynamic["overhead_from_selection_work"] == pytest.approx(
        1 + dynamic["median_ms_selection_work"] / dynamic["median_ms_fixed_exit"], abs=1e-2)
    stacks = result["encoder_stack_median_ms"]
    assert result["full_vs_torchaudio_conformer"] == pytest.approx(
        stacks["ours"] / stacks["torchaudio_conformer"], abs=1e-2)
    cpu = result["cpu_time"]
    assert len(cpu["ratio_by_exit"]) == 6 and cpu["ratio_by_exit"][-1] == 1.0
    assert all(ms > 0 for ms in cpu["median_ms_by_exit"])
    assert cpu["dynamic_overhead"] > 0 and 0 < cpu["fixed_cost_fraction"] < 1
    assert result["machine"]["torch_threads"] == 1 and result["threads"] == 1
    fixed = result["fixed_cost_ms"]
    assert fixed["features"] > 0 and fixed["front_end"] > 0 and fixed["front_end_without_inplace"] > 0
    assert result["fixed_cost_fraction"] == pytest.approx(
        (fixed["features"] + fixed["front_end"]) / medians[-1], abs=1e-2)


def test_bad_arguments_are_refused(load_benchmark):
    with pytest.raises(SystemExit):
        load_benchmark("exit_latency").parse_args(["--reps", "0"])
