"""N-best rescoring of CTC beam hypotheses with a transcript LM and a lexicon."""

import pytest
import torch

from types import SimpleNamespace

from speechbrain_ee.decoding import (
    hparams_nbest_rescorer, load_lexicon, nbest_rescorer, rescored_beam_transcripts, transcript_words, write_lexicon,
)
from speechbrain_ee.inference.decoders import CTCTextDecoder
from speechbrain_ee.selection.measures import nbest_searcher

BOS, EOS, VOCAB = 3, 4, 5  # LM classes: 0 padding, 1 "A", 2 "B", 3 BOS, 4 EOS


class Letters:
    """A stand-in SentencePiece processor with the pieces "a" and "b" (CTC
    classes 0, 1; blank 2) whose LM ids are 1 and 2 (0 is the padding)."""

    def get_piece_size(self):
        return 2

    def id_to_piece(self, i):
        return "ab"[i]

    def decode_ids(self, ids):
        return "".join("ab"[i] for i in ids)

    def encode_as_ids(self, text):
        return [{"A": 1, "B": 2}[c] for c in text if c != " "]


class PrefersB(torch.nn.Module):
    """An LM whose next-token distribution always favours "B" and EOS."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([0.0, -4.0, 4.0, -4.0, 4.0]))

    def forward(self, tokens):
        return self.logits.expand(*tokens.shape, VOCAB)


def posteriors(p_a, p_b):
    """Two frames: the letter (a or b) then blank."""
    frame = torch.tensor([[p_a, p_b, 1.0 - p_a - p_b], [0.01, 0.01, 0.98]])
    return frame.log().unsqueeze(0)


def test_lm_rescoring_changes_the_choice_only_with_weight():
    searcher = nbest_searcher(["a", "b", "<blank>"], blank_index=2, topk=4)
    log_probs = posteriors(0.55, 0.40)  # the acoustics slightly prefer "a"
    lm = PrefersB()
    assert rescored_beam_transcripts(searcher, log_probs, None,
                                     nbest_rescorer(lm, Letters(), 0.01, BOS, EOS)) == [["a"]]
    assert rescored_beam_transcripts(searcher, log_probs, None,
                                     nbest_rescorer(lm, Letters(), 1.0, BOS, EOS)) == [["b"]]


def test_rescorer_weight_must_be_positive():
    with pytest.raises(ValueError, match="lm_weight must be > 0"):
        nbest_rescorer(PrefersB(), Letters(), 0.0, BOS, EOS)


def test_ctc_text_decoder_with_lm():
    rescorer = nbest_rescorer(PrefersB(), Letters(), 1.0, BOS, EOS)
    decoder = CTCTextDecoder(Letters(), blank_index=2, beam_size=4, rescorer=rescorer)
    assert decoder.searcher.topk == 4 and decoder.searcher.prune_history is False
    assert decoder(posteriors(0.55, 0.40), torch.tensor([2])) == ["b"]
    assert CTCTextDecoder(Letters(), blank_index=2, beam_size=4)(posteriors(0.55, 0.40), torch.tensor([2])) == ["a"]
    assert "LM rescoring x1" in repr(decoder)
    with pytest.raises(ValueError, match="needs a beam"):
        CTCTextDecoder(Letters(), blank_index=2, beam_size=0, rescorer=rescorer)


def test_lexicon_penalty_sends_unknown_words_down():
    searcher = nbest_searcher(["a", "b", "<blank>"], blank_index=2, topk=4)
    log_probs = posteriors(0.55, 0.40)  # the acoustics slightly prefer "a", which is not a word
    small = nbest_rescorer(lexicon=["b"], oov_penalty=0.01)
    large = nbest_rescorer(lexicon=["b"], oov_penalty=1.0)
    assert rescored_beam_transcripts(searcher, log_probs, None, small) == [["a"]]
    assert rescored_beam_transcripts(searcher, log_probs, None, large) == [["b"]]
    both = nbest_rescorer(PrefersB(), Letters(), 0.01, BOS, EOS, lexicon=["a"], oov_penalty=1.0)
    assert sorted(both.rescorers) == ["lexicon", "transformerlm"]
    assert "LM rescoring x0.01 + unknown words -1" in repr(
        CTCTextDecoder(Letters(), blank_index=2, beam_size=4, rescorer=both))


@pytest.mark.parametrize("kwargs, message", [
    ({}, "nothing to rescore with"),
    ({"lexicon": ["A"], "oov_penalty": 0.0}, "oov_penalty must be > 0"),
])
def test_bad_rescorer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nbest_rescorer(**kwargs)


def test_lexicon_file_from_manifests(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("ID,duration,wav,spk_id,wrd\na,1.0,a.wav,s,ENTER FOUR\nb,1.0,b.wav,s,FOUR FIVE\n")
    path = write_lexicon(str(train), str(tmp_path / "lex" / "lexicon.txt"))
    assert open(path).read() == "ENTER\nFIVE\nFOUR\n"
    assert load_lexicon(path) == {"ENTER", "FOUR", "FIVE"}
    assert not (tmp_path / "lex" / "lexicon.txt.tmp").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,duration,wav,spk_id,text\na,1.0,a.wav,s,ENTER\n")
    with pytest.raises(ValueError, match="bad.csv: no column 'wrd'"):
        transcript_words(str(bad))
    with pytest.raises(FileNotFoundError, match="lexicon file not found"):
        load_lexicon(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="has no words"):
        load_lexicon(str(tmp_path / "empty.txt"))


def test_hparams_rescorer_reads_lm_and_lexicon(tmp_path):
    (tmp_path / "lexicon.txt").write_text("b\n")
    hparams = SimpleNamespace(tokenizer=Letters(), lm_model=PrefersB(), lm_weight=0.0, lm_bos_index=BOS,
                              lm_eos_index=EOS, lexicon_file=str(tmp_path / "lexicon.txt"), oov_penalty=0.0)
    assert hparams_nbest_rescorer(hparams) is None
    hparams.oov_penalty = 2.0
    assert sorted(hparams_nbest_rescorer(hparams).rescorers) == ["lexicon"]
    hparams.lm_weight = 0.3
    assert sorted(hparams_nbest_rescorer(hparams).rescorers) == ["lexicon", "transformerlm"]
