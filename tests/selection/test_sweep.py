"""Offline sweep == online selection; operating points, oracle hull."""

import pytest
import torch

from speechbrain_ee.inference import run_dynamic
from speechbrain_ee.inference.exit_table import decode_exits
from speechbrain_ee.nnet import EarlyExitConformerEncoder, EarlyExitCTC, ExitHeads, MaskedConvFrontEnd
from speechbrain_ee.selection import ConfidenceSelector, EntropySelector, oracle_exits
from speechbrain_ee.selection.sweep import (
    ExitTable,
    operating_point,
    oracle_penalties,
    selector_grids,
    simulate,
    summarize,
    sweep,
)

VOCAB = 7
TOKENS = [f"▁{i}" for i in range(VOCAB - 1)] + ["<b>"]


def tiny_model():
    torch.manual_seed(0)
    enc = EarlyExitConformerEncoder(
        MaskedConvFrontEnd(20, (8, 8)), d_model=32, nhead=4, d_ffn=64,
        num_layers=6, exit_layers=[1, 2, 4, 6], kernel_size=7, dropout=0.0,
    )
    return EarlyExitCTC(enc, ExitHeads(32, VOCAB, 4)).eval()


def greedy_ids(log_probs, lengths):
    texts = []
    for lp, n in zip(log_probs, lengths.tolist()):
        ids = torch.unique_consecutive(lp[:n].argmax(-1)).tolist()
        texts.append(" ".join(str(i) for i in ids if i != VOCAB - 1))
    return texts


def test_offline_replay_equals_online_selection():
    model = tiny_model()
    torch.manual_seed(1)
    lens = torch.tensor([60, 23, 47, 35, 12, 52, 30])
    feats = torch.randn(len(lens), 60, 20)
    refs = ["1 2 3", "4", "0 4 1", "2 2", "3", "4 0 4", "1"]
    measurers = [EntropySelector(0.0), ConfidenceSelector(0.5, topk=3, vocab_list=TOKENS, blank_index=VOCAB - 1)]
    table = decode_exits(model, [(list("abcdefg"), feats, lens, refs)], greedy_ids, measurers)
    assert len(table.ids) == 7 and len(table.measures["entropy"][0]) == 4
    grids = selector_grids(table, topk=3)
    assert set(grids) == {"fixed", "entropy", "confidence", "patience", "agreement"}
    distinct_outcomes = 0
    for name, selectors in grids.items():
        seen = set()
        for selector in selectors:
            if name == "confidence":
                selector.bind_vocabulary(TOKENS, VOCAB - 1)
            offline = simulate(selector, table)
            online = run_dynamic(model, feats, lens, selector, greedy_ids)
            assert offline.tolist() == online.exits, (name, selector)
            seen.add(tuple(online.exits))
        distinct_outcomes += len(seen)
    assert distinct_outcomes > 12, "the grids should reach many different exit assignments"


def hand_table():
    # 3 utterances, exits after layers 2, 4, 6; 10 reference words in all
    return ExitTable(
        ids=["u1", "u2", "u3"], references=["A B C D", "E F", "G H I J"], exit_layers=[2, 4, 6],
        hypotheses=[["A", "A B C D", "A B C D"], ["E F", "E F", "E F"], ["X", "G H", "G H I J"]],
        word_errors=[[3, 0, 0], [0, 0, 0], [4, 2, 0]], ref_words=[4, 2, 4],
        measures={"entropy": [[0.3, 0.1, None], [0.05, 0.01, None], [0.4, 0.3, None]]},
    )


def test_operating_points_and_summary_by_hand():
    table = hand_table()
    assert operating_point(table, [2, 2, 2]) == {
        "mean_exit_layer": 6.0, "mean_exit_index": 2.0, "wer": 0.0, "errors": 0}
    assert operating_point(table, [0, 0, 0])["wer"] == pytest.approx(70.0)
    assert oracle_exits(table.word_errors).tolist() == [1, 0, 2]
    rows = sweep(table)
    entropy = {round(r["parameter"], 4): (r["mean_exit_layer"], r["wer"]) for r in rows if r["selector"] == "entropy"}
    # threshold 0.2: u2 stops at exit 0 (0.05), u1 at exit 1 (0.1), u3 runs to the end
    assert entropy[0.2] == (4.0, 0.0)
    summary = summarize(table, rows)
    assert summary["wer_per_exit"] == [70.0, 20.0, 0.0]
    assert summary["oracle"]["mean_exit_layer"] == 4.0
    assert summary["selectors"]["entropy"]["mean_exit_at_top_plus_0p5"] == 4.0
    assert summary["selectors"]["fixed"]["mean_exit_at_top_plus_0p5"] == 6.0
    assert summary["selectors"]["oracle"]["mean_exit_at_top_plus_0p5"] == 4.0
    fixed_budgets = summary["selectors"]["fixed"]["lowest_wer_within_mean_exit"]
    assert {k: v["wer"] for k, v in fixed_budgets.items()} == {"2": 70.0, "4": 20.0, "6": 0.0}
    # within 2 layers entropy can only stop everything at exit 0; within 4 it reaches 0 % (threshold 0.2)
    entropy_budgets = summary["selectors"]["entropy"]["lowest_wer_within_mean_exit"]
    assert entropy_budgets["2"]["wer"] == 70.0
    assert entropy_budgets["4"] == {"wer": 0.0, "mean_exit_layer": 4.0, "parameter": pytest.approx(0.2, abs=0.1)}
    # patience 2: u2 repeats itself at exit 1; u1 and u3 only at (or never before) the last exit
    patience = [r for r in rows if r["selector"] == "patience" and r["parameter"] == 2][0]
    assert patience["mean_exit_layer"] == pytest.approx((6 + 4 + 6) / 3)


def test_oracle_hull_lies_below_every_selector():
    torch.manual_seed(4)
    errors = torch.randint(0, 5, (40, 4)).tolist()
    table = ExitTable([str(i) for i in range(40)], ["W W W W"] * 40, [2, 4, 6, 8],
                      [["W"] * 4] * 40, errors, [4] * 40,
                      {"entropy": torch.rand(40, 4).tolist()})
    rows = sweep(table)
    for penalty in oracle_penalties(table):
        best = operating_point(table, oracle_exits(errors, table.exit_layers, penalty))
        bound = best["errors"] + penalty * best["mean_exit_layer"] * 40
        for row in rows:
            assert row["errors"] + penalty * row["mean_exit_layer"] * 40 >= bound - 1e-6
