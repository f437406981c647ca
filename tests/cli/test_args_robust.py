"""Nonsense numbers on the command line are rejected by every command, in one
line naming the flag, before anything runs."""

import pytest

from speechbrain_ee.cli.main import main

BAD_VALUES = [
    ("--lm-weight", "nan"), ("--lm-weight", "inf"), ("--lm-weight", "-1"), ("--oov-penalty", "nan"),
    ("--oov-penalty", "-0.5"), ("--ctc-weight", "1.5"), ("--ctc-weight", "nan"), ("--beam-size", "-1"),
    ("--beam-size", "2.5"), ("--batch-size", "0"), ("--threads", "0"),
]
MODEL_COMMANDS = {
    "evaluate": ["--model", "m", "--csv", "c.csv"],
    "transcribe": ["--model", "m", "a.wav"],
    "curves": ["--model", "m", "--csv", "c.csv", "--output-dir", "out"],
    "calibrate": ["--model", "m", "--csv", "c.csv", "--selector", "entropy", "--target-wer", "10"],
}


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
@pytest.mark.parametrize("flag, value", BAD_VALUES)
def test_robust_bad_numbers_are_rejected_by_name(command, flag, value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written either
    assert main([command, *MODEL_COMMANDS[command], flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: argument {flag}: must be ") and repr(value) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, args", [
    ("transcribe", ["--model", "m", "a.wav", "--threshold", "nan"]),
    ("transcribe", ["--model", "m", "a.wav", "--exit", "-1"]),
    ("calibrate", ["--model", "m", "--csv", "c.csv", "--selector", "entropy", "--target-wer", "nan"]),
    ("attach-lexicon", ["--model", "m", "--csv", "c.csv", "--oov-penalty", "nan"]),
    ("curves", ["--model", "m", "--csv", "c.csv", "--output-dir", "o", "--topk", "0"]),
])
def test_robust_other_bad_numbers(command, args, capsys):
    assert main([command, *args]) == 2
    assert capsys.readouterr().err.startswith("error: argument ")
