"""Smoke test of benchmarks/long_audio.py on a few AN4 test utterances (robust long-audio path)."""

import json
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_robust_long_audio_benchmark_writes_json(tmp_path, an4_dir, load_benchmark):
    out = tmp_path / "long.json"
    result = load_benchmark("long_audio").main([
        "--model", str(REPO_ROOT / "pretrained" / "an4-conformer-ctc-ee"), "--an4", str(an4_dir),
        "--max-utterances", "8", "--lengths", "12", "25", "--unchunked", "12", "--chunk-seconds", "10",
        "--json-out", str(out),
    ])
    assert json.loads(out.read_text()) == result
    chunked = [r for r in result["runs"] if r["chunked"]]
    assert [r["chunked"] for r in result["runs"]] == [True, False, True]
    assert all(r["segments"] >= 2 and r["chunk_seconds"] == 10 for r in chunked)
    assert all(0 < r["peak_rss_gb"] < 3 and r["rss_after_load_gb"] <= r["peak_rss_gb"] for r in result["runs"])
    longest = result["longest"]
    assert longest["seconds"] <= 25
    assert longest["wer_delta"] == round(longest["wer_long_file"] - longest["wer_one_by_one"], 2)
    assert {"command", "machine", "wall_s"} <= set(result)
    assert result["decoder"].startswith("CTC prefix beam search (beam 30")  # what ran: the model's default


def test_robust_pause_grid_mode(tmp_path, an4_dir, load_benchmark):
    from speechbrain_ee.data.an4 import _read_split

    rows = _read_split(str(an4_dir), "test")[:5]
    manifest = tmp_path / "dev.csv"
    lines = [f"{u.ID},1,{u.wav},{u.spk_id},{u.wrd}\n" for u in rows]
    manifest.write_text("ID,duration,wav,spk_id,wrd\n" + "".join(lines))
    result = load_benchmark("long_audio").main([
        "--model", str(REPO_ROOT / "pretrained" / "an4-conformer-ctc-ee"), "--pause-grid", str(manifest),
        "--min-pauses", "0.35", "--depths", "0.2", "0.4",
    ])
    assert result["utterances"] == 5
    assert [(g["min_pause"], g["depth"]) for g in result["grid"]] == [(0.35, 0.2), (0.35, 0.4)]
    assert all(g["segments"] >= 1 and 0 <= g["wer_last_exit"] <= 100 for g in result["grid"])
    assert set(result["one_by_one"]) == {"wer_default_selector", "wer_last_exit"}
