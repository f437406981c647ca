"""Smoke test of benchmarks/export_latency.py (ONNX export and runtime) on the shipped AN4 model."""

import json

import pytest


def test_onnx_export_benchmark_writes_consistent_json(tmp_path, load_benchmark, an4_dir):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "export.json"
    result = load_benchmark("export_latency").main([
        "--an4", str(an4_dir), "--max-utterances", "2", "--reps", "1", "--warmup", "0", "--seconds", "1",
        "--thread-counts", "1", "--threads", "1", "--beam-size", "2", "--json-out", str(out),
    ])
    assert json.loads(out.read_text()) == result
    sizes = result["sizes_bytes"]["total"]
    assert result["size_ratio_int8"] == pytest.approx(sizes["int8"] / sizes["fp32"], abs=1e-4)
    table = result["latency_by_threads"]["1"]
    assert result["latency_ratio_onnx_int8_vs_torch_fp32_top"] == table["ratio_onnx_int8_vs_torch_fp32_by_exit"][-1]
    for variant in ("torch_fp32", "torch_int8", "onnx_fp32", "onnx_int8"):
        assert len(table[variant]["median_ms_by_exit"]) == 6 and table[variant]["exit_ratio_vs_top"][-1] == 1.0
    assert result["rel_shift_max_abs_logprob_diff"] == 0.0
    assert 0 < result["runtime_peak_rss_mb"] < 1000
    wer = result["wer"]
    assert wer["utterances"] == 2 and wer["onnx_fp32_transcripts_identical_to_torch_fp32"] == [2] * 6
    assert wer["by_exit"]["onnx_fp32"] == wer["by_exit"]["torch_fp32"]
    assert result["wer_delta_int8_max"] == max(wer["int8_minus_fp32_onnx_greedy"])
