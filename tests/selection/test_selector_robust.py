"""A selector that knows when it does not know: GuardedAgreementSelector, its
calibration on a clean + degraded dev mix, and the robustness report."""

import json
import pathlib

import numpy
import pytest
import torch

from speechbrain_ee.inference import run_dynamic
from speechbrain_ee.selection import SELECTORS, EntropySelector, GuardedAgreementSelector, make_selector
from speechbrain_ee.selection.calibrate import (
    calibrate_on_mix,
    guarded_candidates,
    load_selector,
    mix_operating_points,
    save_selector,
)
from speechbrain_ee.selection.robust import main as robust_main
from speechbrain_ee.selection.robust import save_tables, table_name
from speechbrain_ee.inference.exit_table import decode_exits
from speechbrain_ee.selection.sweep import ExitTable, fixed_exit_wer_at, simulate

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_robust_guarded_rule_first_exit_gate_then_agreement_and_entropy():
    sel = GuardedAgreementSelector(0.05, agreement=0.0, first_exit_threshold=0.01)
    assert sel.start([2, 4, 6, 8, 10]) == 0
    first = sel.decide(0, (torch.tensor([0.005, 0.02, 0.001, 0.03]), ["A", "B", "C", "D"]),
                       torch.tensor([0, 1, 2, 3]))
    assert first.tolist() == [True, False, True, False]
    # utterance 1 agrees and is sure; 3 agrees but is unsure
    second = sel.decide(1, (torch.tensor([0.01, 0.2]), ["B", "D"]), torch.tensor([1, 3]))
    assert second.tolist() == [True, False]
    # 3 changes its transcript: no agreement however sure
    assert sel.decide(2, (torch.tensor([0.0]), ["E"]), torch.tensor([3])).tolist() == [False]
    assert sel.decide(3, (torch.tensor([0.0]), ["E"]), torch.tensor([3])).tolist() == [True]
    never_first = GuardedAgreementSelector(1.0)  # first_exit_threshold 0: never at the first exit
    never_first.start([2, 4])
    assert never_first.decide(0, (torch.zeros(2), ["A", "B"]), torch.tensor([0, 1])).tolist() == [False, False]


def test_robust_guarded_is_registered_and_stored():
    assert SELECTORS["guarded"] is GuardedAgreementSelector
    sel = make_selector("guarded", 0.02, agreement=0.1, first_exit_threshold=0.003)
    assert sel.config() == {"threshold": 0.02, "agreement": 0.1, "first_exit_threshold": 0.003}
    with pytest.raises(ValueError, match="agreement"):
        GuardedAgreementSelector(0.1, agreement=float("nan"))
    with pytest.raises(ValueError, match="first-exit entropy threshold"):
        GuardedAgreementSelector(0.1, first_exit_threshold=-1)


def test_robust_guarded_single_set_calibration_points_to_the_mix(capsys):
    from speechbrain_ee.cli.calibrate import main as calibrate_main

    assert calibrate_main(["--model", "m", "--csv", "dev.csv", "--selector", "guarded", "--target-wer", "10"]) == 2
    assert "speechbrain_ee.selection.robust" in capsys.readouterr().err


def test_robust_guarded_save_and_load(tmp_path):
    path = save_selector(str(tmp_path), GuardedAgreementSelector(0.02, 0.1, 0.003), {"wer": 9.0},
                         filename="robust.yaml")
    assert path.endswith("robust.yaml")
    loaded, info = load_selector(path, with_calibration=True)
    assert isinstance(loaded, GuardedAgreementSelector) and loaded.config()["agreement"] == 0.1
    assert info == {"wer": 9.0}


def test_robust_guarded_online_equals_offline():
    from test_sweep import greedy_ids, tiny_model  # tests/selection is on the path (rootdir imports)

    model = tiny_model()
    torch.manual_seed(3)
    lens = torch.tensor([60, 23, 47, 35, 12, 52, 30])
    feats = torch.randn(len(lens), 60, 20)
    refs = ["1 2 3", "4", "0 4 1", "2 2", "3", "4 0 4", "1"]
    table = decode_exits(model, [(list("abcdefg"), feats, lens, refs)], greedy_ids, [EntropySelector(0.0)])
    entropies = sorted(v for row in table.measures["entropy"] for v in row[:-1])
    outcomes = set()
    for threshold in (entropies[0], entropies[len(entropies) // 2], 1.0):
        for first in (0.0, entropies[len(entropies) // 3]):
            for agreement in (0.0, 0.5):
                sel = GuardedAgreementSelector(threshold, agreement, first)
                offline = simulate(sel, table).tolist()
                assert offline == run_dynamic(model, feats, lens, sel, greedy_ids).exits
                outcomes.add(tuple(offline))
    assert len(outcomes) > 3


def confident_but_wrong_tables():
    """Clean: exit 0 sure and mostly right. Degraded: exit 0 is surest where
    it is wrong (its transcript then changes at the next exit); the deeper
    exits agree and are right."""
    def table(n, wrong_at_first, sure_at_first):
        hyps, errors, entropy = [], [], []
        for i in range(n):
            wrong = wrong_at_first(i)
            hyps.append(["X Y" if wrong else "A B", "A B", "A B", "A B"])
            errors.append([2 if wrong else 0, 0, 0, 0])
            entropy.append([0.002 if sure_at_first(i) else 0.008, 0.001, 0.001, None])
        return ExitTable([str(i) for i in range(n)], ["A B"] * n, [2, 4, 6, 8], hyps, errors, [2] * n,
                         {"entropy": entropy})
    return {"clean": table(20, lambda i: i == 0, lambda i: True),
            "degraded": table(20, lambda i: i % 2 == 0, lambda i: i % 2 == 0)}


def test_robust_entropy_is_confidently_wrong_where_guarded_is_not():
    tables = confident_but_wrong_tables()
    entropy = EntropySelector(0.005)  # calibrated on clean: everyone leaves at the first exit
    points = mix_operating_points(entropy, tables)
    assert points["clean"]["wer"] == 5.0 and points["clean"]["mean_exit_layer"] == 2.0
    # degraded: the wrong half leaves at exit 0, the right half goes on: 50 % WER at a
    # mean depth of 3 layers, where the fixed exits give 25 %
    assert points["degraded"]["mean_exit_layer"] == 3.0 and points["degraded"]["gap"] == 25.0
    choice, points = calibrate_on_mix(tables, guarded_candidates(tables), target_wer=10.0, max_gap=0.0)
    assert isinstance(choice, GuardedAgreementSelector)
    assert points["degraded"]["gap"] <= 0.0 and points["degraded"]["wer"] < 25.0
    assert points["clean"]["wer"] <= 10.0
    with pytest.raises(ValueError, match="no candidate selector reaches WER <= 1"):
        calibrate_on_mix(tables, [entropy], target_wer=1.0)
    with pytest.raises(ValueError, match="no 'clean' table"):
        calibrate_on_mix({"degraded": tables["degraded"]}, [entropy])


def test_robust_fixed_exit_curve_is_linear_between_exits():
    table = confident_but_wrong_tables()["degraded"]
    assert fixed_exit_wer_at(table, 2.0) == 50.0 and fixed_exit_wer_at(table, 4.0) == 0.0
    assert fixed_exit_wer_at(table, 3.0) == 25.0 and fixed_exit_wer_at(table, 12.0) == 0.0


def test_robust_report_from_cached_tables(tmp_path, capsys):
    tables = confident_but_wrong_tables()
    cache = tmp_path / "exits.json"
    conditions = {"clean": "clean", "8k-band": "degraded"}
    for table in tables.values():
        table.measures["confidence"] = [[0.9, 0.9, 0.9, None]] * 20
    save_tables(str(cache), {table_name(split, name): tables[source]
                             for split in ("dev", "test") for name, source in conditions.items()})
    model = tmp_path / "model"
    model.mkdir()
    save_selector(str(model), EntropySelector(0.005), {"target_wer": 10.0})
    out = tmp_path / "robust.json"
    args = ["--model", str(model), "--sets", str(tmp_path), "--tables", str(cache), "--conditions", "clean",
            "8k-band", "--output", str(out), "--no-greedy", "--selector-out", str(tmp_path / "sel.yaml")]
    assert robust_main(args) == 0
    result = json.loads(out.read_text())
    assert result["before"]["wer_per_exit"]["8k-band"] == [50.0, 0.0, 0.0, 0.0]
    shipped = result["selectors"]["shipped (selector.yaml)"]["test"]["8k-band"]
    assert shipped["mean_exit_layer"] == 3.0 and shipped["gap_to_fixed"] == 25.0
    assert result["selectors"]["guarded"]["test"]["8k-band"]["gap_to_fixed"] <= 0.0
    assert result["guarded_within_1_of_fixed_on_every_degraded_test_set"] is True
    assert result["long_audio_600s_peak_rss_gb"] is None and "machine" in result
    assert isinstance(load_selector(str(tmp_path / "sel.yaml")), GuardedAgreementSelector)
    assert robust_main([*args[:-2], "--conditions", "8k-band"]) == 2
    assert "must include clean" in capsys.readouterr().err
    # --before: an earlier record of a baseline model on the same sets
    baseline = json.loads(out.read_text())
    baseline["before"]["wer_per_exit"]["8k-band"] = [60.0, 40.0, 30.0, 20.0]
    baseline["model"] = "baseline"
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    assert robust_main([*args, "--before", str(tmp_path / "baseline.json")]) == 0
    compared = json.loads(out.read_text())
    assert compared["after"]["wer_per_exit"]["8k-band"] == [50.0, 0.0, 0.0, 0.0]
    assert compared["before"]["wer_per_exit"]["8k-band"] == [60.0, 40.0, 30.0, 20.0]
    assert compared["models"] == {"before": "baseline", "after": str(model)}
    long = tmp_path / "long.json"
    long.write_text(json.dumps({"model": str(model), "long_audio_600s_peak_rss_gb": 0.8, "decoder": "greedy CTC",
                                "longest": {"seconds": 598.7, "wer_delta": 1.5}}))
    assert robust_main([*args, "--long-audio", str(long)]) == 0
    compared = json.loads(out.read_text())
    assert compared["long_audio_600s_peak_rss_gb"] == 0.8 and compared["long_audio"]["wer_delta"] == 1.5
    long.write_text(json.dumps({"model": "another", "long_audio_600s_peak_rss_gb": 0.8, "longest": {}}))
    assert robust_main([*args, "--long-audio", str(long)]) == 2
    assert "not " in capsys.readouterr().err
    baseline["utterances"] = {"clean": 19, "8k-band": 20}
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    assert robust_main([*args, "--before", str(tmp_path / "baseline.json")]) == 2
    assert "measured on other sets" in capsys.readouterr().err


def test_robust_guarded_on_real_degraded_an4(an4_dir, tmp_path):
    """The shipped model with the guarded selector on two real AN4 test
    utterances band-limited to 8 kHz: online selection runs, and the depth
    never goes below the second exit unless the first exit is very sure."""
    import csv

    from speechbrain_ee.data.an4 import prepare_an4
    from speechbrain_ee.data.degrade import make_degraded_set
    from speechbrain_ee.data.manifest import Utterance, write_manifest
    from speechbrain_ee.inference import EarlyExitASR

    rows = list(csv.DictReader(open(prepare_an4(str(an4_dir), str(tmp_path / "m"))["test"])))[:2]
    small = tmp_path / "small.csv"
    write_manifest([Utterance(r["ID"], r["wav"], r["spk_id"], r["wrd"]) for r in rows], str(small))
    band = make_degraded_set(str(small), str(tmp_path / "sets"), "8k-band")
    asr = EarlyExitASR.from_hparams(str(REPO / "pretrained" / "an4-conformer-ctc-ee"),
                                    savedir=str(tmp_path / "asr"), beam_size=0)
    paths = [r["wav"] for r in csv.DictReader(open(band))]
    never_first = GuardedAgreementSelector(1.0, agreement=0.0, first_exit_threshold=0.0)
    results = asr.recognize_files(paths, batch_size=2, selector=never_first)
    assert all(r.error is None and r.layers >= 4 for r in results)
    every_exit = asr.recognize_every_exit(*_batch(asr, paths))
    for utt, r in enumerate(results):  # stopped where two successive exits first agree
        texts = [every_exit[e][utt] for e in range(len(asr.exit_layers))]
        agree = [e for e in range(1, len(texts)) if texts[e] == texts[e - 1]]
        assert r.exit_index == (agree[0] if agree else len(texts) - 1)


def _batch(asr, paths):
    from speechbrain.utils.data_utils import batch_pad_right

    wavs, lens = batch_pad_right([asr.load_file(p) for p in paths])
    return wavs, lens


def test_robust_an4_report_replays_from_its_exit_tables(tmp_path):
    """results/robust_an4_shipped.json (the shipped model) follows from its cached exit tables with today's
    selectors and calibration (no decoding: about 20 s on one thread)."""
    published = json.loads((REPO / "results" / "robust_an4_shipped.json").read_text())
    out = tmp_path / "replay.json"
    assert robust_main(["--model", str(REPO / "pretrained" / "an4-conformer-ctc-ee"), "--sets", str(tmp_path),
                        "--tables", str(REPO / "results" / "robust_an4_exits.json"), "--output", str(out)]) == 0
    replay = json.loads(out.read_text())
    for key in ("before", "selectors", "clean_depth_at_equal_wer", "wer_ratio_8k_band_exit12",
                "guarded_within_1_of_fixed_on_every_degraded_test_set"):
        assert replay[key] == published[key], key


def test_robust_an4_before_after_report_replays_from_its_exit_tables(tmp_path):
    """results/robust_an4.json (the robust model against the shipped one, its
    selectors, its long-audio record) follows from its cached exit tables."""
    published = json.loads((REPO / "results" / "robust_an4.json").read_text())
    out = tmp_path / "replay.json"
    assert robust_main(["--model", str(REPO / "pretrained" / "an4-conformer-ctc-ee-robust"), "--sets", str(tmp_path),
                        "--tables", str(REPO / "results" / "robust_an4_robust_exits.json"), "--output", str(out),
                        "--before", str(REPO / "results" / "robust_an4_shipped.json"),
                        "--long-audio", str(REPO / "results" / "long_audio_robust.json")]) == 0
    replay = json.loads(out.read_text())
    for key in ("before", "after", "selectors", "clean_depth_at_equal_wer", "wer_ratio_8k_band_exit12",
                "clean_top_exit_change", "long_audio_600s_peak_rss_gb",
                "guarded_within_1_of_fixed_on_every_degraded_test_set"):
        assert replay[key] == published[key], key
    assert published["wer_ratio_8k_band_exit12"] <= 1.5 < published["wer_ratio_8k_band_exit12_before"]
