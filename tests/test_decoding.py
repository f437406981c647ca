"""N-best rescoring of CTC beam hypotheses with a transcript LM."""

import pytest
import torch

from speechbrain_ee.decoding import rescored_beam_transcripts, transcript_lm_rescorer
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
                                     transcript_lm_rescorer(lm, Letters(), 0.01, BOS, EOS)) == [["a"]]
    assert rescored_beam_transcripts(searcher, log_probs, None,
                                     transcript_lm_rescorer(lm, Letters(), 1.0, BOS, EOS)) == [["b"]]


def test_rescorer_weight_must_be_positive():
    with pytest.raises(ValueError, match="lm_weight must be > 0"):
        transcript_lm_rescorer(PrefersB(), Letters(), 0.0, BOS, EOS)


def test_ctc_text_decoder_with_lm():
    rescorer = transcript_lm_rescorer(PrefersB(), Letters(), 1.0, BOS, EOS)
    decoder = CTCTextDecoder(Letters(), blank_index=2, beam_size=4, lm_rescorer=rescorer)
    assert decoder.searcher.topk == 4 and decoder.searcher.prune_history is False
    assert decoder(posteriors(0.55, 0.40), torch.tensor([2])) == ["b"]
    assert CTCTextDecoder(Letters(), blank_index=2, beam_size=4)(posteriors(0.55, 0.40), torch.tensor([2])) == ["a"]
    assert "LM rescoring x1" in repr(decoder)
    with pytest.raises(ValueError, match="needs a beam"):
        CTCTextDecoder(Letters(), blank_index=2, beam_size=0, lm_rescorer=rescorer)
