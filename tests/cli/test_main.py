"""``sbee``: the subcommands, the dispatch, the entry points."""

import subprocess
import sys

import pytest

from speechbrain_ee.cli.main import COMMANDS, main

EXPECTED = ["train", "export", "evaluate", "transcribe", "curves", "calibrate", "attach-lm", "attach-lexicon",
            "demo", "summarize", "compare"]


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    for name in EXPECTED:
        assert f"    {name}" in printed
    assert list(COMMANDS) == EXPECTED


def test_dispatch_and_unknown_command(capsys):
    assert main([]) == 2
    assert "usage: sbee" in capsys.readouterr().err
    assert main(["nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown command 'nope'; choose from train, export")
    assert main(["attach-lexicon", "--model", "x"]) == 2  # the command's own parser
    assert "the following arguments are required: --csv, --oov-penalty" in capsys.readouterr().err


@pytest.mark.parametrize("name", EXPECTED)
def test_every_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    assert f"sbee {name}" in capsys.readouterr().out


def test_python_dash_m_runs_sbee():
    done = subprocess.run([sys.executable, "-m", "speechbrain_ee", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "attach-lexicon" in done.stdout
