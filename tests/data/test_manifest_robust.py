"""Manifests with empty, lower-case or badly spaced transcripts."""

import pathlib
import re

import numpy
import pytest
import sentencepiece
import soundfile

from speechbrain_ee.data.manifest import DataPreparationError
from speechbrain_ee.data.pipelines import load_dataset, tokenizer_case

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return sentencepiece.SentencePieceProcessor(
        model_file=str(REPO / "pretrained" / "an4-conformer-ctc-ee" / "tokenizer.model"))


def manifest(tmp_path, transcripts):
    wav = tmp_path / "a.wav"
    soundfile.write(wav, numpy.zeros(16000) + 0.01, 16000)
    lines = ["ID,duration,wav,spk_id,wrd"] + [f"u{i},1.0,{wav},s,{t}" for i, t in enumerate(transcripts)]
    path = tmp_path / "test.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_robust_shipped_tokenizer_is_upper_case(tokenizer):
    assert tokenizer_case(tokenizer) == "upper"


def test_robust_lower_case_and_spaces_normalised(tmp_path, tokenizer):
    data = load_dataset(manifest(tmp_path, ["  go  to five ", "GO TO FIVE"]), tokenizer)
    first, second = data[0], data[1]
    assert first["wrd"] == second["wrd"] == "GO TO FIVE"
    assert first["tokens"].tolist() == second["tokens"].tolist()
    assert tokenizer.unk_id() not in first["tokens"].tolist()


@pytest.mark.parametrize("transcripts, rows", [(["YES", ""], "1 row(s): row 3 (ID u1)"),
                                               (['" "', "NO", ""], "2 row(s): row 2 (ID u0), row 4 (ID u2)")])
def test_robust_empty_transcript_is_an_error_naming_file_and_row(tmp_path, tokenizer, transcripts, rows):
    expected = r"test\.csv: empty transcript \(wrd\) in " + re.escape(rows)
    with pytest.raises(DataPreparationError, match=expected):
        load_dataset(manifest(tmp_path, transcripts), tokenizer)
