import json

import pytest

from speechbrain_ee.cli.compare import main

MACHINE = {"cpu": "x", "cpu_count": 2}


def record(path, layers, wers, **extra):
    path.write_text(json.dumps({"exit_layers": layers, "wer": wers, "command": "python train.py",
                                "machine": MACHINE, "wall_s": 10, **extra}))
    return str(path)


def test_compare_places_every_exit_under_its_layer(tmp_path):
    ee = record(tmp_path / "ee.json", [2, 4, 12], [30.0, 10.0, 8.0])
    noee12 = record(tmp_path / "n12.json", [12], [9.5])
    noee2 = record(tmp_path / "n2.json", [2], [25.0])
    out = tmp_path / "table.json"
    assert main(["--entry", f"ctc.ee={ee}", "--entry", f"ctc.noee={noee12}", "--entry", f"ctc.noee={noee2}",
                 "--decoding", "greedy", "--json-out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["ctc"]["ee"] == {"2": 30.0, "4": 10.0, "12": 8.0}
    assert list(table["ctc"]["noee"].items()) == [("2", 25.0), ("12", 9.5)]  # by depth, not by argument order
    assert table["source_files"]["ctc.noee.12"] == noee12 and table["decoding"] == "greedy"


def test_compare_rejects_what_is_not_one_run_per_cell(tmp_path, capsys):
    ee = record(tmp_path / "ee.json", [2, 12], [30.0, 8.0])
    other = record(tmp_path / "other.json", [12], [7.0])
    args = ["--decoding", "greedy", "--json-out", str(tmp_path / "t.json")]
    assert main(["--entry", f"ctc.ee={ee}", "--entry", f"ctc.ee={other}", *args]) == 2
    assert "ctc.ee.12 comes from both" in capsys.readouterr().err
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"exit_layers": [12], "wer": [7.0]}))
    assert main(["--entry", f"ctc.ee={bare}", *args]) == 2
    assert "missing command, machine, wall_s" in capsys.readouterr().err
    assert main(["--entry", f"ctc={ee}", *args]) == 2
    assert not (tmp_path / "t.json").exists()
