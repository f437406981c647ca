"""What every command shares: the error handler, the argument types, the outputs."""

import argparse

import pytest

from speechbrain_ee.cli.arguments import non_negative_float, non_negative_int, positive_int, unit_interval
from speechbrain_ee.cli.common import (
    CommandParser, UsageError, command_main, handle_errors, one_line, recipe_errors,
)
from speechbrain_ee.cli.outputs import PendingFile, open_output
from speechbrain_ee.data.manifest import DataPreparationError


def fails(message, kind=ValueError):
    raise kind(message)


def test_user_errors_are_one_line_and_status_2(capsys):
    assert handle_errors(len, "abc") == 3 and handle_errors(lambda: None) == 0
    assert handle_errors(fails, "no column 'wrd' in train.csv") == 2
    assert capsys.readouterr().err == "error: no column 'wrd' in train.csv\n"
    for kind in (FileNotFoundError, DataPreparationError, PermissionError):
        assert handle_errors(fails, "gone.csv\n  more", kind=kind) == 2
        assert capsys.readouterr().err == "error: gone.csv more\n"
    with pytest.raises(KeyError):  # a bug, not bad input: the traceback stays
        handle_errors(fails, "x", kind=KeyError)
    with pytest.raises(ValueError):  # --debug: the traceback
        handle_errors(fails, "x", debug=True)


def test_command_main_parses_and_handles(capsys):
    def add(parser):
        parser.add_argument("--beam-size", type=non_negative_int, default=None)

    main = command_main("demo", "A demo.", add, lambda args: fails(f"beam {args.beam_size}"))
    assert main(["--beam-size", "3"]) == 2
    assert capsys.readouterr().err == "error: beam 3\n"
    assert main(["--beam-size", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --beam-size: must be an integer >= 0, got 'x' (see sbee demo --help)" in err
    assert main(["--unknown"]) == 2
    assert "unrecognized arguments: --unknown" in capsys.readouterr().err
    with pytest.raises(ValueError, match="beam 1"):
        main(["--beam-size", "1", "--debug"])


@pytest.mark.parametrize("kind, text, ok", [
    (non_negative_float, "0", 0.0), (non_negative_float, "2.5", 2.5), (non_negative_float, "nan", None),
    (non_negative_float, "inf", None), (non_negative_float, "-1", None), (non_negative_float, "x", None),
    (unit_interval, "0.6", 0.6), (unit_interval, "1.5", None), (unit_interval, "-0.1", None),
    (positive_int, "1", 1), (positive_int, "0", None), (positive_int, "2.5", None),
    (non_negative_int, "0", 0), (non_negative_int, "-3", None),
])
def test_argument_types(kind, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
            kind(text)
    else:
        assert kind(text) == ok


def test_parser_errors_raise_usage_errors():
    parser = CommandParser(prog="sbee x")
    parser.add_argument("--n", type=positive_int, required=True)
    with pytest.raises(UsageError, match="the following arguments are required: --n"):
        parser.parse_args([])


def test_outputs_are_checked_before_the_work(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write --output .*file.txt/out.tsv"):
        open_output(str(blocker / "out.tsv"))
    with pytest.raises(OSError, match="cannot write --json-out .*file.txt/s.json"):
        PendingFile(str(blocker / "s.json"))
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        PendingFile(str(tmp_path))
    handle = open_output(str(tmp_path / "new" / "out.tsv"))
    handle.write("line\n")  # line buffered: on disk at once
    assert (tmp_path / "new" / "out.tsv").read_text() == "line\n"
    handle.close()
    with PendingFile(str(tmp_path / "s.json")):
        pass  # the work failed or wrote nothing: no file, no leftover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "new"]


def test_recipe_errors_are_one_line():
    from ruamel.yaml import YAMLError

    def bad_override():
        raise KeyError("Override 'nope' not found in: ['seed', 'data_folder']")

    with pytest.raises(UsageError, match="unknown override --nope: the recipe yaml has no key 'nope'"):
        recipe_errors(bad_override)
    with pytest.raises(UsageError, match="bad yaml"):
        recipe_errors(fails, "x", YAMLError)
    with pytest.raises(KeyError):  # other key errors are bugs
        recipe_errors(fails, "other", KeyError)
    assert one_line(FileNotFoundError(2, "No such file or directory", "a.yaml")) == "No such file or directory: a.yaml"
