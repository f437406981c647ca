"""Exit selectors: the paper's measures computed by hand, each rule, bad input."""

import math

import numpy
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ee.selection import (
    AgreementSelector,
    ConfidenceSelector,
    EntropySelector,
    FixedExitSelector,
    LayerBudgetSelector,
    PatienceSelector,
    make_selector,
    mean_frame_entropy,
    nbest_confidence,
    nbest_searcher,
    oracle_exits,
    transcript_distance,
)
from speechbrain_ee.selection.calibrate import calibrate, load_selector, save_selector

VOCAB = ["▁a", "▁b", "c", "<blank>"]


def test_entropy_is_eq5_over_real_frames_only():
    torch.manual_seed(1)
    log_probs = torch.log_softmax(3 * torch.randn(2, 5, 4), dim=-1)
    lengths = torch.tensor([5, 3])
    got = mean_frame_entropy(log_probs, lengths)
    p = log_probs.exp().double().numpy()
    for b, t_real in enumerate([5, 3]):
        # -1/(T |Y|) sum_t sum_y p log p, T = real length, |Y| = 4
        expected = -(p[b, :t_real] * numpy.log(p[b, :t_real])).sum() / (t_real * 4)
        assert float(got[b]) == pytest.approx(expected, rel=1e-5)
    garbage = log_probs.clone()
    garbage[1, 3:] = torch.log_softmax(torch.zeros(2, 4), -1)  # padding must not count
    assert torch.allclose(mean_frame_entropy(garbage, lengths), got)


def test_entropy_extremes():
    uniform = torch.full((1, 3, 6), -math.log(6))
    assert float(mean_frame_entropy(uniform, torch.tensor([3]))) == pytest.approx(math.log(6) / 6)
    one_hot = torch.log_softmax(torch.tensor([[[50.0, 0, 0, 0]] * 2]), -1)
    assert float(mean_frame_entropy(one_hot, torch.tensor([2]))) == pytest.approx(0.0, abs=1e-12)


def test_nbest_confidence_is_softmax_of_the_k_best_scores():
    torch.manual_seed(2)
    log_probs = torch.log_softmax(torch.randn(1, 6, 4), dim=-1)
    searcher = nbest_searcher(VOCAB, 3, topk=5, beam_size=20)
    scores = [h.lm_score for h in searcher(log_probs)[0]]
    assert len(scores) == 5
    expected = math.exp(scores[0]) / sum(math.exp(s) for s in scores)
    got = nbest_confidence(log_probs, torch.tensor([6]), searcher)
    assert float(got[0]) == pytest.approx(expected)
    one = nbest_confidence(log_probs, torch.tensor([6]), nbest_searcher(VOCAB, 3, topk=1))
    assert float(one[0]) == 1.0


def test_nbest_confidence_uses_real_length():
    torch.manual_seed(3)
    log_probs = torch.log_softmax(torch.randn(1, 8, 4), dim=-1)
    searcher = nbest_searcher(VOCAB, 3, topk=4)
    padded = torch.cat([log_probs[:, :5], torch.log_softmax(torch.randn(1, 3, 4), -1)], dim=1)
    assert torch.equal(nbest_confidence(padded, torch.tensor([5]), searcher),
                       nbest_confidence(log_probs[:, :5], torch.tensor([5]), searcher))


def test_entropy_and_confidence_rules():
    index = torch.tensor([0, 1, 2])
    assert EntropySelector(0.1).decide(0, torch.tensor([0.05, 0.1, 0.2]), index).tolist() == [True, False, False]
    assert ConfidenceSelector(0.8).decide(0, torch.tensor([0.9, 0.8, 0.1]), index).tolist() == [True, False, False]


def test_patience_follows_batch_compaction():
    sel = PatienceSelector(3)
    assert sel.start([1, 2, 3, 4, 5]) == 0
    assert sel.decide(0, ["A", "B", "C"], torch.tensor([0, 1, 2])).tolist() == [False, False, False]
    assert sel.decide(1, ["A", "B", "X"], torch.tensor([0, 1, 2])).tolist() == [False, False, False]
    # utterance 1 left the batch elsewhere: rows are now utterances 0 and 2
    assert sel.decide(2, ["A", "X"], torch.tensor([0, 2])).tolist() == [True, False]
    assert sel.decide(3, ["X"], torch.tensor([2])).tolist() == [True]
    sel.start([1, 2, 3, 4, 5])  # a new batch forgets the history
    assert sel.decide(0, ["A"], torch.tensor([0])).tolist() == [False]


def test_agreement_uses_cer_between_successive_exits():
    assert transcript_distance("ABCD", "ABCE") == 0.25
    sel = AgreementSelector(0.25)
    sel.start([1, 2, 3])
    assert sel.decide(0, ["ABCD", "AB"], torch.tensor([0, 1])).tolist() == [False, False]
    assert sel.decide(1, ["ABCE", "ABCD"], torch.tensor([0, 1])).tolist() == [True, False]
    exact = AgreementSelector(0.0)
    exact.start([1, 2])
    exact.decide(0, ["X"], torch.tensor([5]))
    assert exact.decide(1, ["X"], torch.tensor([5])).tolist() == [True]


def test_fixed_and_budget():
    assert FixedExitSelector(2).start([2, 4, 6]) == 2
    assert LayerBudgetSelector(5).start([2, 4, 6]) == 1
    assert LayerBudgetSelector(100).start([2, 4, 6]) == 2
    with pytest.raises(ValueError, match="not an exit"):
        FixedExitSelector(3).start([2, 4, 6])
    with pytest.raises(ValueError, match="below the first exit"):
        LayerBudgetSelector(1).start([2, 4, 6])


def test_oracle_is_lowest_exit_with_best_errors():
    errors = numpy.array([[4, 2, 2, 3], [1, 1, 1, 1], [5, 4, 3, 0]])
    assert oracle_exits(errors).tolist() == [1, 0, 3]
    # one error per layer: going deeper never pays; half an error per layer: it does for utterance 2
    assert oracle_exits(errors, [2, 4, 6, 8], penalty=1.0).tolist() == [0, 0, 0]
    assert oracle_exits(errors, [2, 4, 6, 8], penalty=0.5).tolist() == [1, 0, 3]


@pytest.mark.parametrize("build, message", [
    (lambda: EntropySelector(float("nan")), "entropy threshold"),
    (lambda: EntropySelector(-0.1), "entropy threshold"),
    (lambda: EntropySelector("0.1"), "must be a number"),
    (lambda: ConfidenceSelector(1.5), "confidence threshold"),
    (lambda: ConfidenceSelector(float("nan")), "confidence threshold"),
    (lambda: ConfidenceSelector(0.5, topk=0), "topk"),
    (lambda: ConfidenceSelector(0.5, topk=2.5), "topk"),
    (lambda: nbest_searcher(VOCAB, 3, topk=-1), "topk"),
    (lambda: PatienceSelector(0), "patience"),
    (lambda: PatienceSelector(1.5), "patience"),
    (lambda: AgreementSelector(float("nan")), "agreement threshold"),
    (lambda: FixedExitSelector(True), "exit index"),
    (lambda: FixedExitSelector(-1), "exit index"),
    (lambda: LayerBudgetSelector(float("inf")), "max_layers"),
    (lambda: make_selector("nope", 1), "unknown selector"),
    (lambda: make_selector("entropy", None), "needs a value"),
])
def test_bad_parameters_are_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_confidence_with_a_ready_searcher():
    searcher = nbest_searcher(VOCAB, 3, topk=4, beam_size=20)
    sel = ConfidenceSelector(0.5, searcher=searcher)
    assert sel.topk == 4
    log_probs = torch.log_softmax(torch.randn(2, 5, 4), -1)
    assert torch.equal(sel.measure(log_probs, torch.tensor([5, 3])),
                       nbest_confidence(log_probs, torch.tensor([5, 3]), searcher))


def test_confidence_without_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="bind_vocabulary"):
        ConfidenceSelector(0.5).measure(torch.zeros(1, 2, 4), torch.tensor([2]))


def test_selectors_from_hyperpyyaml():
    loaded = load_hyperpyyaml("""
entropy: !new:speechbrain_ee.selection.EntropySelector
    threshold: 0.01
confidence: !new:speechbrain_ee.selection.ConfidenceSelector
    threshold: 0.9
    topk: 300
budget: !new:speechbrain_ee.selection.LayerBudgetSelector
    max_layers: 6
""")
    assert loaded["entropy"].threshold == 0.01
    assert loaded["confidence"].topk == 300
    assert loaded["budget"].start([2, 4, 6, 8]) == 2


def test_calibration_picks_and_stores(tmp_path):
    rows = [{"selector": "entropy", "parameter": t, "wer": w, "mean_exit_layer": m}
            for t, w, m in [(0.0, 10.0, 12.0), (0.02, 10.4, 7.0), (0.05, 12.0, 5.0), (0.1, 20.0, 2.0)]]
    assert calibrate(rows, "entropy", target_wer=10.5)["parameter"] == 0.02
    assert calibrate(rows, "entropy", target_mean_exit=5.5)["parameter"] == 0.05
    with pytest.raises(ValueError, match="reaches WER"):
        calibrate(rows, "entropy", target_wer=5.0)
    with pytest.raises(ValueError, match="exactly one"):
        calibrate(rows, "entropy", target_wer=10, target_mean_exit=5)
    path = save_selector(tmp_path, ConfidenceSelector(0.93, topk=50), {"wer": 10.4})
    restored = load_selector(path)
    assert isinstance(restored, ConfidenceSelector)
    assert (restored.threshold, restored.topk) == (0.93, 50)
