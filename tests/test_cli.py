import pytest

from speechbrain_ee.cli import exit_code


def fails(message, kind=ValueError):
    raise kind(message)


def test_exit_code_reports_bad_input(capsys):
    assert exit_code(len, "abc") == 0
    assert exit_code(fails, "no column 'wrd' in train.csv") == 2
    assert capsys.readouterr().err == "error: no column 'wrd' in train.csv\n"
    assert exit_code(fails, "gone.csv", kind=FileNotFoundError) == 2
    with pytest.raises(KeyError):  # a bug, not bad input: the traceback stays
        exit_code(fails, "x", kind=KeyError)
