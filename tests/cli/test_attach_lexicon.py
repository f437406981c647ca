"""Attaching a lexicon to an exported model directory."""

from speechbrain_ee.cli.attach_lexicon import main
from speechbrain_ee.recipe import rescoring_overrides

HYPERPARAMS = "vocab_size: 28\n\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"


def make_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "hyperparams.yaml").write_text(HYPERPARAMS)
    train = tmp_path / "train.csv"
    train.write_text("ID,duration,wav,spk_id,wrd\na,1.0,a.wav,s,ENTER FOUR\nb,1.0,b.wav,s,RUBOUT\n")
    return model, train


def test_attach_writes_lexicon_and_penalty(tmp_path, capsys):
    model, train = make_model(tmp_path)
    assert main(["--model", str(model), "--csv", str(train), "--oov-penalty", "4"]) == 0
    assert (model / "lexicon.txt").read_text() == "ENTER\nFOUR\nRUBOUT\n"
    text = (model / "hyperparams.yaml").read_text()
    assert "oov_penalty: 4.0\nlexicon_file: !ref <pretrained_path>/lexicon.txt\n\npretrainer: !new:" in text
    assert main(["--model", str(model), "--csv", str(train), "--oov-penalty", "4"]) == 2
    assert "already has a lexicon" in capsys.readouterr().err
    assert rescoring_overrides(str(model), oov_penalty=2) == {"oov_penalty": 2.0}  # curves --oov-penalty


def test_bad_input_writes_nothing(tmp_path, capsys):
    model, train = make_model(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,duration,wav,spk_id,text\na,1.0,a.wav,s,ENTER\n")
    for args, message in (
        (["--csv", str(train), str(bad)], "bad.csv: no column 'wrd'"),
        (["--csv", str(tmp_path / "missing.csv")], "missing.csv"),
        (["--csv", str(train), "--oov-penalty", "-1"], "argument --oov-penalty: must be a number >= 0"),
    ):
        penalty = [] if "--oov-penalty" in args else ["--oov-penalty", "4"]
        assert main(["--model", str(model), *args, *penalty]) == 2
        assert message in capsys.readouterr().err
        assert (model / "hyperparams.yaml").read_text() == HYPERPARAMS
        assert not (model / "lexicon.txt").exists()
    assert main(["--model", str(tmp_path / "nowhere"), "--csv", str(train), "--oov-penalty", "1"]) == 2
    assert "no hyperparams.yaml" in capsys.readouterr().err
