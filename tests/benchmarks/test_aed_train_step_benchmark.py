"""Smoke test of benchmarks/aed_train_step.py (a few seconds)."""

import json

import pytest


def test_benchmark_writes_consistent_json(tmp_path, load_benchmark):
    out = tmp_path / "step.json"
    result = load_benchmark("aed_train_step").main(["--reps", "2", "--warmup", "0", "--seconds", "1",
                                                    "--batch", "2", "--decoders", "2", "--json-out", str(out)])
    assert json.loads(out.read_text()) == result
    assert sorted(result["median_ms"]) == ["decoders_2", "decoders_6"]
    assert all(ms > 0 for ms in result["median_ms"].values())
    assert result["vs_all"]["decoders_6"] == 1.0 and result["vs_all"]["decoders_2"] > 0


def test_decoder_targets_end_with_eos(load_benchmark):
    import torch

    bench = load_benchmark("aed_train_step")
    tokens_bos, tokens_eos, eos_lens = bench.decoder_targets(torch.tensor([[3, 4, 5], [6, 7, 0]]),
                                                             torch.tensor([1.0, 2 / 3]))
    assert tokens_bos.tolist() == [[1, 3, 4, 5], [1, 6, 7, 0]]
    assert tokens_eos.tolist() == [[3, 4, 5, 2], [6, 7, 2, 0]]
    assert eos_lens.tolist() == [1.0, 0.75]


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--decoders", "7"]])
def test_bad_arguments_are_refused(load_benchmark, bad):
    with pytest.raises(SystemExit):
        load_benchmark("aed_train_step").main(bad)
