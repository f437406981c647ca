import math

import pytest
import torch

from speechbrain_ee.losses import early_exit_ctc_loss, exit_distillation_loss, resolve_exit_weights


def reference_ctc(log_probs, in_lens, targets, tgt_lens, blank):
    """Plain PyTorch CTC, mean over the batch of per-utterance losses divided by target length."""
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, in_lens, tgt_lens, blank=blank,
        reduction="none", zero_infinity=True,
    )
    return (loss / tgt_lens).mean()


def test_loss_is_sum_of_exit_ctc():
    torch.manual_seed(1)
    log_probs = [torch.randn(3, 30, 8).log_softmax(-1) for _ in range(4)]
    targets = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0], [7, 0, 0, 0]])
    in_lens, tgt_lens = torch.tensor([30, 25, 12]), torch.tensor([4, 2, 1])
    total, per_exit = early_exit_ctc_loss(
        log_probs, in_lens / 30, targets, tgt_lens / 4, blank_index=0
    )
    expected = [reference_ctc(lp, in_lens, targets, tgt_lens, 0) for lp in log_probs]
    for got, exp in zip(per_exit, expected):
        assert torch.allclose(got, exp, atol=1e-5)
    assert torch.allclose(total, sum(expected), atol=1e-5)


def test_exit_weights_and_last_blank():
    log_probs = [torch.randn(2, 20, 6).log_softmax(-1) for _ in range(2)]
    targets = torch.tensor([[0, 1, 2], [3, 4, 0]])
    total, per_exit = early_exit_ctc_loss(
        log_probs, torch.ones(2), targets, torch.tensor([1.0, 2 / 3]), blank_index=5,
        exit_weights=[0.25, 1.0],
    )
    assert torch.allclose(total, 0.25 * per_exit[0] + per_exit[1])
    assert all(torch.isfinite(p) for p in per_exit)


def test_weight_count_mismatch():
    with pytest.raises(ValueError, match="exit weights"):
        early_exit_ctc_loss([torch.zeros(1, 5, 3)], torch.ones(1), torch.ones(1, 1).long(),
                            torch.ones(1), 0, exit_weights=[1.0, 1.0])


# ---------------------------------------------------------------- exit weights

def test_depth_weights_follow_the_layers_and_keep_the_scale():
    weights = resolve_exit_weights("depth", 6, [2, 4, 6, 8, 10, 12])
    assert weights == pytest.approx([layer / 7 for layer in (2, 4, 6, 8, 10, 12)])
    assert sum(weights) == pytest.approx(6)
    assert resolve_exit_weights("depth", 2, [3, 9]) == pytest.approx([0.5, 1.5])
    assert resolve_exit_weights(None, 3) == resolve_exit_weights("uniform", 3) == [1.0, 1.0, 1.0]
    assert resolve_exit_weights([0, 2], 2) == [0.0, 2.0]


def test_depth_weights_in_the_loss():
    log_probs = [torch.randn(2, 20, 6).log_softmax(-1) for _ in range(2)]
    args = (torch.ones(2), torch.tensor([[0, 1, 2], [3, 4, 0]]), torch.tensor([1.0, 2 / 3]), 5)
    total, per_exit = early_exit_ctc_loss(log_probs, *args,
                                          exit_weights=resolve_exit_weights("depth", 2, [1, 3]))
    assert torch.allclose(total, 0.5 * per_exit[0] + 1.5 * per_exit[1])


@pytest.mark.parametrize("weights, message", [
    ([1.0, float("nan")], r"exit_weights\[1\] must be a finite number >= 0, got nan"),
    ([1.0, float("inf")], r"exit_weights\[1\] must be a finite number >= 0, got inf"),
    ([1.0, -0.5], r"exit_weights\[1\] must be a finite number >= 0, got -0.5"),
    ([0.0, 0.0], "exit_weights must not all be 0"),
    ([1.0, 1.0, 1.0], "exit_weights: 3 exit weights for 2 exits"),
    (["1", 2], "exit_weights must be null, a scheme"),
    ([True, 1.0], "exit_weights must be null, a scheme"),
    (2.0, "exit_weights must be null, a scheme"),
    ("deep", "exit_weights: unknown scheme 'deep'"),
])
def test_bad_exit_weights_name_the_key(weights, message):
    with pytest.raises(ValueError, match=message) as error:
        resolve_exit_weights(weights, 2, [2, 4])
    assert "\n" not in str(error.value)


def test_depth_scheme_needs_the_layers():
    with pytest.raises(ValueError, match="exit_weights: the 'depth' scheme needs the layers"):
        early_exit_ctc_loss([torch.zeros(1, 5, 3)], torch.ones(1), torch.ones(1, 1).long(),
                            torch.ones(1), 0, exit_weights="depth")


# ---------------------------------------------------------------- self-distillation
def kd_by_hand(teacher, student, frames, temperature):
    """Mean over ``frames`` ((b, t) pairs) of T^2 * sum_c p_t (log p_t - log p_s), softened by T."""
    total = 0.0
    for b, t in frames:
        p = torch.softmax(teacher[b, t] / temperature, -1).tolist()
        q = torch.softmax(student[b, t] / temperature, -1).tolist()
        total += sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q))
    return temperature ** 2 * total / len(frames)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_distillation_is_the_kl_to_the_top_exit_over_real_frames(temperature):
    torch.manual_seed(0)
    log_probs = [torch.randn(2, 6, 5).log_softmax(-1) for _ in range(3)]
    lengths = torch.tensor([1.0, 0.5])  # utterance 2: 3 real frames of 6
    total, per_exit = exit_distillation_loss(log_probs, lengths, temperature=temperature)
    frames = [(0, t) for t in range(6)] + [(1, t) for t in range(3)]
    assert len(per_exit) == 2
    for student, term in zip(log_probs[:2], per_exit):
        assert term.item() == pytest.approx(kd_by_hand(log_probs[2], student, frames, temperature), rel=1e-5)
    assert torch.allclose(total, per_exit[0] + per_exit[1])
    # the padded frames do not count, whatever they hold
    padded = [lp.clone() for lp in log_probs]
    for lp in padded:
        lp[1, 3:] = torch.randn(3, 5).log_softmax(-1)
    assert torch.allclose(exit_distillation_loss(padded, lengths, temperature=temperature)[0], total)


def test_distillation_teacher_is_detached():
    log_probs = [torch.randn(2, 6, 5).requires_grad_() for _ in range(2)]
    total, _ = exit_distillation_loss([lp.log_softmax(-1) for lp in log_probs], torch.ones(2), 2.0)
    total.backward()
    assert log_probs[0].grad.abs().sum() > 0
    assert log_probs[1].grad is None  # the top exit gets no gradient from the distillation


def test_blank_threshold_drops_the_teachers_blank_frames():
    torch.manual_seed(1)
    blank = 4
    teacher = torch.randn(1, 8, 5)
    teacher[0, ::2, blank] = 12.0  # even frames: the top exit is sure of blank (p > 0.99)
    teacher = teacher.log_softmax(-1)
    student = torch.randn(1, 8, 5).log_softmax(-1)
    assert bool((teacher[0, 1::2, blank].exp() < 0.95).all())
    kept, _ = exit_distillation_loss([student, teacher], torch.ones(1), 1.0, blank, 0.95)
    assert kept.item() == pytest.approx(kd_by_hand(teacher, student, [(0, t) for t in range(1, 8, 2)], 1.0),
                                        rel=1e-5)
    every, _ = exit_distillation_loss([student, teacher], torch.ones(1), 1.0, blank, None)
    assert every.item() == pytest.approx(kd_by_hand(teacher, student, [(0, t) for t in range(8)], 1.0), rel=1e-5)
    assert not torch.isclose(kept, every)
    one, _ = exit_distillation_loss([student, teacher], torch.ones(1), 1.0, blank, 1.0)
    assert torch.allclose(one, every)  # 1.0 keeps every frame too
    # a student that differs only on the dropped frames costs the same
    changed = student.clone()
    changed[0, ::2] = torch.randn(4, 5).log_softmax(-1)
    assert torch.allclose(exit_distillation_loss([changed, teacher], torch.ones(1), 1.0, blank, 0.95)[0], kept)


def test_no_frame_kept_gives_zero_and_a_single_exit_nothing():
    teacher = torch.full((1, 4, 3), -20.0)
    teacher[..., 2] = 0.0
    student = torch.randn(1, 4, 3, requires_grad=True)
    total, per_exit = exit_distillation_loss([student.log_softmax(-1), teacher.log_softmax(-1)], torch.ones(1),
                                             1.0, 2, 0.5)
    assert total.item() == 0.0 and len(per_exit) == 1
    total.backward()  # still part of the graph
    total, per_exit = exit_distillation_loss([teacher.log_softmax(-1)], torch.ones(1))
    assert total.item() == 0.0 and per_exit == []


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
    ({"temperature": -1.0}, "temperature must be a finite number > 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number > 0, got nan"),
    ({"temperature": float("inf")}, "temperature must be a finite number > 0"),
    ({"temperature": True}, "temperature must be a finite number > 0"),
    ({"blank_index": 4, "blank_threshold": 0.0}, "blank_threshold must be null or a finite number > 0 and <= 1"),
    ({"blank_index": 4, "blank_threshold": 1.5}, "blank_threshold must be null or a finite number > 0 and <= 1"),
    ({"blank_threshold": 0.9}, "blank_threshold 0.9 needs blank_index"),
    ({"blank_index": 5, "blank_threshold": 0.9}, r"blank_index 5 outside 0..4"),
    ({"blank_index": 1.5, "blank_threshold": 0.9}, "blank_index must be null or an integer, got 1.5"),
])
def test_bad_distillation_options(kwargs, message):
    log_probs = [torch.randn(1, 4, 5).log_softmax(-1) for _ in range(2)]
    with pytest.raises(ValueError, match=message) as error:
        exit_distillation_loss(log_probs, torch.ones(1), **kwargs)
    assert "\n" not in str(error.value)


def test_distillation_needs_same_shaped_exits():
    with pytest.raises(ValueError, match="differ in shape"):
        exit_distillation_loss([torch.zeros(1, 4, 5), torch.zeros(1, 3, 5)], torch.ones(1))
