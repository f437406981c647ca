"""The fixed wav2vec2 character vocabulary, through the code paths that use a tokenizer."""

import pytest
import torch
from speechbrain.decoders.ctc import CTCPrefixBeamSearcher

from speechbrain_ee.decoding import ctc_vocab_list, greedy_transcripts
from speechbrain_ee.tokenizers import Wav2Vec2CharTokenizer

# facebook/wav2vec2-base-960h vocab.json, in id order
HF_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return Wav2Vec2CharTokenizer(str(tmp_path_factory.mktemp("tok"))).sp


def test_vocabulary_is_the_wav2vec2_one_with_the_blank_last(tokenizer):
    vocab = ctc_vocab_list(tokenizer, blank_index=tokenizer.get_piece_size())
    assert len(vocab) == 32 and vocab[-1] == "<blank>"
    hf_without_blank = [p.replace("|", "\u2581") for p in HF_VOCAB[1:]]
    assert vocab[:-1] == hf_without_blank, "same pieces and order as HF, id = HF id - 1"


def test_encode_decode_round_trip(tokenizer):
    text = "HELLO WORLD IT'S AN4"
    ids = tokenizer.encode_as_ids(text)
    assert len(ids) == len(text) and tokenizer.id_to_piece(ids[5]) == "\u2581"
    assert tokenizer.decode_ids(ids) == "HELLO WORLD IT'S AN \u2047 "  # "4" is not in the vocabulary
    assert tokenizer.piece_to_id("<unk>") == ids[-1] == 2


def test_model_file_is_written_once_and_checked(tmp_path):
    first = Wav2Vec2CharTokenizer(str(tmp_path))
    assert first.model_file.endswith("31_char.model")
    stamp = (tmp_path / "31_char.model").stat().st_mtime_ns
    Wav2Vec2CharTokenizer(str(tmp_path))
    assert (tmp_path / "31_char.model").stat().st_mtime_ns == stamp
    (tmp_path / "31_char.model").write_bytes(b"not a model")
    with pytest.raises((ValueError, RuntimeError, OSError)):
        Wav2Vec2CharTokenizer(str(tmp_path))


def one_hot_log_probs(ids, blank, num_classes=32):
    """Peaky CTC posteriors emitting ``ids`` separated by blanks."""
    frames = [i for token in ids for i in (token, blank)]
    probs = torch.full((1, len(frames), num_classes), 1e-4)
    probs[0, torch.arange(len(frames)), torch.tensor(frames)] = 1.0
    return (probs / probs.sum(-1, keepdim=True)).log()


def test_greedy_and_prefix_beam_search_give_words(tokenizer):
    blank = tokenizer.get_piece_size()
    log_probs = one_hot_log_probs(tokenizer.encode_as_ids("SEE YOU"), blank)
    rel_lens = torch.ones(1)
    assert greedy_transcripts(log_probs, rel_lens, blank, tokenizer) == [["SEE", "YOU"]]
    searcher = CTCPrefixBeamSearcher(blank_index=blank, vocab_list=ctc_vocab_list(tokenizer, blank),
                                     beam_size=4)
    assert searcher(log_probs, rel_lens)[0][0].text.split() == ["SEE", "YOU"]
